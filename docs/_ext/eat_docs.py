"""Sphinx extension of the eat docs: prepares `docs/generated/` before Sphinx reads its sources.

- copies the nbdev notebooks of `nbs/` with nbdev's directives turned into what myst-nb understands
  (`#| hide` cells removed, `#| eval: false` and slow cells tagged `skip-execution`, directive lines dropped);
- copies the experiments report of the best scale that exists (`cpu`, else `smoke`) with a note saying which;
- draws the home page's example figure with `eat.score` and `eat.explain`;
- appends the nbdev parameter comments (docments) of each function to its docstring for autodoc.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
GEN = DOCS / 'generated'
DIRECTIVE = re.compile(r'^\s*#\|\s*(.*?)\s*$')
REPORT_SCALES = ('cpu', 'smoke')  # preferred first


def _write_if_changed(path: Path, text: str | bytes):
    "Write only when the content differs, so that Sphinx's incremental build keeps unchanged pages."
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    if not path.is_file() or path.read_bytes() != data: path.write_bytes(data)


def _directives(src: str) -> list[str]:
    "nbdev directives at the top of a code cell (`#| export`, `#| eval: false`, ...)."
    out = []
    for line in src.splitlines():
        m = DIRECTIVE.match(line)
        if not m: break
        out.append(m.group(1))
    return out


def nbdev_to_myst(nb: dict, skip_flags: set[str]) -> dict:
    "A copy of an nbdev notebook that myst-nb renders the way nbdev's own docs would."
    cells = []
    for c in nb['cells']:
        c = dict(c, metadata=dict(c.get('metadata', {})))
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'code':
            ds = _directives(src)
            if 'hide' in ds or src.strip() in ('nbdev_export()', 'import nbdev; nbdev.nbdev_export()'): continue
            tags = list(c['metadata'].get('tags', []))
            if any(re.fullmatch(r'eval:\s*false', d, re.I) for d in ds) or skip_flags & set(ds):
                tags.append('skip-execution')
            if any(re.fullmatch(r'echo:\s*false', d, re.I) for d in ds): tags.append('remove-input')
            if tags: c['metadata']['tags'] = tags
            src = '\n'.join(l for l in src.splitlines() if not DIRECTIVE.match(l)).strip('\n')
            if not src: continue
        c['source'] = src
        cells.append(c)
    return dict(nb, cells=cells)


def copy_notebooks(skip_flags: set[str]) -> list[Path]:
    "Every notebook of nbs/ (drafts starting with _ or . excluded) into generated/nbs/."
    nbs = ROOT / 'nbs'
    done = []
    for src in sorted(nbs.rglob('*.ipynb')):
        rel = src.relative_to(nbs)
        if any(p.startswith(('_', '.')) for p in rel.parts): continue
        nb = nbdev_to_myst(json.loads(src.read_text(encoding='utf-8')), skip_flags)
        dst = GEN / 'nbs' / rel
        _write_if_changed(dst, json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
        done.append(dst)
    keep = set(done)
    for old in (GEN / 'nbs').rglob('*.ipynb'):
        if old not in keep: old.unlink()
    return done


def find_report() -> tuple[str, Path] | None:
    "The scale and folder of the committed/produced report to publish: cpu if present, else smoke."
    for scale in REPORT_SCALES:
        d = ROOT / 'experiments' / 'results' / scale
        if (d / 'REPORT.md').is_file(): return scale, d
    return None


NOTES = {
    'cpu': "These are the **cpu-scale** results found in `experiments/results/cpu/` when this site was built, "
           "measured on the synthetic benchmark (not on AVA). Rebuild them with `make reproduce`.",
    'smoke': "**The cpu-scale results are not committed in this checkout**, so this page shows the **smoke-scale** "
             "results found in `experiments/results/smoke/`: a tiny end-to-end run (96 synthetic images, a couple of "
             "epochs) that checks the pipeline works. Its numbers say nothing about EAT. Produce the real study "
             "with `make reproduce` (cpu scale) and rebuild the docs.",
}


def copy_report():
    "generated/report/: the report of the best available scale with a note saying which one it is."
    out = GEN / 'report'
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    found = find_report()
    if found is None:
        _write_if_changed(out / 'index.md', "# Experiments report\n\n"
            "```{note}\nNo experiments report exists in this checkout: neither `experiments/results/cpu/REPORT.md` "
            "nor `experiments/results/smoke/REPORT.md` was found when these docs were built. Run "
            "`make reproduce` (cpu scale, hours on a CPU) or `make reproduce SCALE=smoke` (a few minutes), then "
            "`make docs`.\n```\n\nHow the study is organised: {doc}`/running_at_scale` and `experiments/README.md`.\n")
        return None
    scale, src = found
    for f in src.iterdir():
        if f.is_file() and f.suffix.lower() in ('.png', '.svg', '.jpg', '.csv'): shutil.copy2(f, out / f.name)
    text = (src / 'REPORT.md').read_text(encoding='utf-8')
    title, _, body = text.partition('\n')
    if not title.startswith('# '): title, body = f'# EAT reproduction: {scale} scale', text
    csvs = sorted(f.name for f in out.glob('*.csv'))
    files = ''.join(f'- {{download}}`{n} <{n}>`\n' for n in csvs)
    _write_if_changed(out / 'index.md', f"{title}\n\n```{{note}}\n{NOTES[scale]}\n```\n{body}\n"
                      + (f"\n## Tables as CSV\n\n{files}" if files else ''))
    return scale


TRAINED_FIGURE = ROOT / 'experiments' / 'results' / 'cpu' / 'attention_figures_attention_100.png'


def trained_figure(path: Path) -> Path:
    "The home page's figure: where the trained cpu-study models look, the report's committed attention figure."
    if not TRAINED_FIGURE.is_file():
        raise FileNotFoundError(f'{TRAINED_FIGURE} is missing: it is committed with the cpu study '
                                '(`eat-reproduce --scale cpu --report-only` copies it from the attention run)')
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TRAINED_FIGURE, path)
    return path


def _docments_lines(obj) -> list[str]:
    "`:param name: comment` lines from nbdev's inline parameter comments."
    from fastcore.docments import docments
    try: d = docments(obj, full=True)  # classes: their __init__, or the fields' comments of a dataclass
    except (TypeError, ValueError, OSError): return []
    return [f':param {k}: {v["docment"]}' for k, v in d.items() if k not in ('self', 'return') and v.get('docment')]


MD_CODE = re.compile(r'(?<![`\\w])`([^`\n]+)`(?!`)(\w?)')


def markdown_code_to_rst(line: str) -> str:
    "nbdev docstrings are Markdown: `code` becomes an RST literal (escaped when a letter follows, as in `path`s)."
    return MD_CODE.sub(lambda m: f'``{m.group(1)}``' + (f'\\ {m.group(2)}' if m.group(2) else ''), line)


def add_docments(app, what, name, obj, options, lines):
    lines[:] = [markdown_code_to_rst(l) for l in lines]
    if what not in ('function', 'method', 'class') or any(l.lstrip().startswith(':param') for l in lines): return
    extra = _docments_lines(obj)
    if extra: lines.extend([''] + [markdown_code_to_rst(l) for l in extra])


def api_page() -> list[str]:
    "generated/api.md: an autosummary of every module of eat/, in the order of the notebooks that define them."
    mods = []
    for f in (ROOT / 'eat').glob('*.py'):
        if f.stem.startswith('_'): continue
        m = re.search(r'File to edit: \.\./nbs/(\S+)\.ipynb', f.read_text(encoding='utf-8'))
        mods.append((m.group(1) if m else f'zz_{f.stem}', f'eat.{f.stem}'))
    names = [n for _, n in sorted(mods)]
    _write_if_changed(GEN / 'api.md', "# API reference\n\nEvery public function and class of the package, one page per "
        "module, generated from the docstrings. Parameter descriptions come from the inline comments of the nbdev "
        "notebooks each module is exported from (shown under *Parameters*).\n\n```{eval-rst}\n.. autosummary::\n"
        "   :toctree: api\n\n" + ''.join(f'   {n}\n' for n in names) + "```\n")
    return names


def prepare(app, config):
    skip = set(config.eat_skip_flags)
    copy_notebooks(skip)
    copy_report()
    api_page()
    trained_figure(GEN / 'figures' / 'trained_cpu_attention.png')


def setup(app):
    app.add_config_value('eat_skip_flags', ['slow'], 'env')
    app.connect('config-inited', prepare)
    app.connect('autodoc-process-docstring', add_docments)
    return {'parallel_read_safe': True, 'version': '1'}
