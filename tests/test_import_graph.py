"""The package's own import graph, read from the source (imports inside functions included): no module reaches
itself through other modules, and the model stack imports downward only (model <- baselines <- weights)."""
import ast
from pathlib import Path

import eat

PKG = Path(eat.__file__).resolve().parent
MODULES = {p.stem for p in PKG.glob('*.py')} - {'__init__'}


def _targets(node: ast.AST, module: str) -> set[str]:
    "The package modules one import statement (or importlib.import_module('eat.x') call) of `module` names."
    if isinstance(node, ast.Import): names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level == 1: base = f'eat.{base}' if base else 'eat'
        elif node.level > 1: raise AssertionError(f"eat/{module}.py line {node.lineno}: relative import above eat")
        names = [base] + [f'{base}.{a.name}' for a in node.names]  # `from eat import x` may name module x
    elif (isinstance(node, ast.Call) and getattr(node.func, 'attr', getattr(node.func, 'id', None)) == 'import_module'
          and node.args and isinstance(node.args[0], ast.Constant)): names = [str(node.args[0].value)]
    else: return set()
    return {n.split('.')[1] for n in names if n.startswith('eat.') and n.split('.')[1] in MODULES} - {module}


def import_graph() -> dict[str, set[str]]:
    "Each module of eat/ and the package modules it imports anywhere in its source (`import eat` alone is no edge)."
    return {p.stem: set().union(*(_targets(n, p.stem) for n in ast.walk(ast.parse(p.read_text()))))
            for p in sorted(PKG.glob('*.py')) if p.stem in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    "One import cycle as [a, b, ..., a], or None (depth-first search)."
    state, stack = {}, []

    def visit(m):
        state[m] = 'open'; stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 'open': return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)): return found
        state[m] = 'done'; stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)): return found
    return None


def test_the_graph_reader_sees_function_level_imports():
    g = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}}
    assert find_cycle(g) == ['a', 'b', 'c', 'a'] and find_cycle({'a': {'b'}, 'b': set()}) is None
    tree = ast.parse("def f():\n    from eat.weights import load_pretrained\n    from . import data\nimport eat.model")
    assert set().union(*(_targets(n, 'x') for n in ast.walk(tree))) == {'weights', 'data', 'model'}


def test_no_import_cycles():
    graph = import_graph()
    assert graph['weights'] >= {'model', 'baselines'}  # the reader finds real edges
    assert (cycle := find_cycle(graph)) is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_model_stack_imports_downward():
    graph = import_graph()
    assert not graph['model'] & {'baselines', 'weights'}, graph['model']
    assert 'weights' not in graph['baselines'], graph['baselines']
