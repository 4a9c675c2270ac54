"""EAT as a pyiqa metric (issue 27): `pyiqa.create_metric('eat', ...)` on a model folder and on an original checkpoint
with its YAML scores a folder with `Scorer`'s scores; the command line route (`python -m eat.pyiqa_metric`, which is
`eat-pyiqa`) scores a folder; pyiqa's plugin entry point registers the metric in a fresh process.

Skipped as a whole when pyiqa (the optional `pyiqa` extra) is not installed; `make test` installs it."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pyiqa = pytest.importorskip('pyiqa', reason="pyiqa is not installed: these tests need the optional extra "
                                             "(pip install 'eat[pyiqa]'; make's venv installs it)")

import eat.pyiqa_metric as M
from eat.model import create_model
from eat.score import Scorer
from eat.weights import save_pretrained
from originals import write_original

torch.set_num_threads(1)
SMALL = dict(img_size=64, window_sizes=[4, 4, 4, 2])
SIZES = [(80, 120), (64, 64), (150, 100), (90, 200), (100, 150)]  # (h, w); the last is a JPEG
EPS = 1e-4


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    "A model folder (untrained eat_micro at 64 px, head and tables randomised so a wrong load shows), an original "
    "checkpoint with its YAML, and a folder of photos of several sizes."
    root = tmp_path_factory.mktemp('pyiqa')
    torch.manual_seed(0)
    m = create_model('eat_micro', **SMALL).eval()
    with torch.no_grad():
        for n, p in m.named_parameters():
            if 'rpe_table' in n or n.startswith('cls_head'): p.normal_(0, 0.1)
    save_pretrained(m, root / 'model')
    write_original(root, **SMALL)
    photos = root / 'photos'
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(SIZES):
        yy, xx = np.mgrid[:h, :w]  # smooth gradients plus noise: something a resize can get subtly wrong
        a = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) % 256], -1) + rng.normal(0, 20, (h, w, 3))
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
        im.save(photos / (f'{i}.jpg' if i == len(SIZES) - 1 else f'{i}.png'), quality=95)
    return root


def _scorer_scores(weights, config=None, **kw) -> dict:
    "eat's own scores of the photos, by file name."
    table = Scorer.from_weights(weights, config, device='cpu', **kw).score(str(weights.parent / 'photos'))
    assert (table.error == '').all(), table.error.tolist()
    return {Path(p).name: s for p, s in zip(table.path, table.score)}


def _pyiqa_scores(metric, photos: Path) -> dict:
    "pyiqa's scores of the photos, one file at a time as its command line reads them."
    return {Path(p).name: metric(p).item() for p in pyiqa.utils.scandir_images(str(photos))}


def _max_diff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b) and len(a) == len(SIZES), (sorted(a), sorted(b))
    return max(abs(a[k] - b[k]) for k in a)


@pytest.mark.parametrize('form', ['folder', 'original'])
def test_create_metric_scores_a_folder_as_scorer_does(files, form):
    weights, config = ((files / 'model', None) if form == 'folder' else (files / 'orig.pth', files / 'orig.yaml'))
    metric = pyiqa.create_metric('eat', weights=str(weights), config=config and str(config), device='cpu')
    assert (metric.lower_better, metric.score_range, metric.metric_mode) == (False, '1, 10', 'NR')
    ours, theirs = _scorer_scores(weights, config), _pyiqa_scores(metric, files / 'photos')
    diff = _max_diff(ours, theirs)
    print(f'{form}: largest |pyiqa - Scorer| over {len(ours)} photos: {diff:.2e}')
    assert diff < EPS
    assert len(set(np.round(list(theirs.values()), 6))) == len(SIZES)  # a model that scores, not a constant


def test_batches_tta_and_pyiqa_weights_name(files):
    "A B x 3 x H x W batch gives each image's own score; tta and pyiqa's `pretrained_model_path` name work too."
    photos = sorted((files / 'photos').glob('*.png'))[:2]
    x = torch.stack([torch.from_numpy(np.array(Image.open(p).resize((96, 72)))).permute(2, 0, 1) / 255
                     for p in photos])
    metric = pyiqa.create_metric('eat', pretrained_model_path=str(files / 'model'), tta=True, device='cpu')
    scores = metric(x)
    assert scores.shape == (2, 1)
    one = torch.cat([metric(x[i:i + 1]) for i in range(2)])
    torch.testing.assert_close(scores, one, atol=EPS, rtol=0)
    ims = [Image.fromarray((x[i] * 255).round().byte().permute(1, 2, 0).numpy()) for i in range(2)]
    expected = Scorer.from_weights(files / 'model', device='cpu', tta=True).score(ims).score.to_numpy()
    np.testing.assert_allclose(scores.flatten().numpy(), expected, atol=EPS, rtol=0)


def test_tensor_resize_is_differentiable_and_close(files):
    "resize='tensor' (for as_loss=True) passes gradients and stays near Scorer's Pillow resize."
    metric = pyiqa.create_metric('eat', weights=str(files / 'model'), resize='tensor', as_loss=True, device='cpu')
    p = sorted((files / 'photos').glob('*.png'))[0]
    x = (torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1)[None] / 255).requires_grad_()
    loss = metric(x)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    exact = _scorer_scores(files / 'model')[p.name]
    print(f"resize='tensor' vs Scorer on {p.name}: {abs(loss.item() - exact):.2e}")
    assert abs(loss.item() - exact) < 0.05
    with pytest.raises(RuntimeError, match="resize='tensor'"):
        pyiqa.create_metric('eat', weights=str(files / 'model'), as_loss=True, device='cpu')(x)


def test_without_weights_the_error_says_what_to_pass():
    with pytest.raises(ValueError, match=r"weights=.*no public EAT weights|no public EAT weights.*weights="):
        pyiqa.create_metric('eat', device='cpu')
    assert 'eat' in pyiqa.list_models(metric_mode='NR')


def _python(args: list[str], env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    "Run this Python in a fresh process, the way a user would, with the checkout importable."
    env = dict(os.environ, OMP_NUM_THREADS='1', **(env_extra or {}))
    root = str(Path(__file__).resolve().parents[1])
    env['PYTHONPATH'] = os.pathsep.join([*(env_extra or {}).get('PYTHONPATH', '').split(os.pathsep), root,
                                         os.environ.get('PYTHONPATH', '')]).strip(os.pathsep)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_command_line_scores_a_folder(files, capsys):
    r = _python(['-m', 'eat.pyiqa_metric', 'eat', '-t', str(files / 'photos'), '--weights', str(files / 'model'),
                 '--device', 'cpu', '-v'])
    assert r.returncode == 0, r.stdout + r.stderr
    cli = {Path(p).name: float(s) for p, s in re.findall(r"'([^']+\.(?:png|jpg))': ([-\d.e]+)", r.stdout)}
    diff = _max_diff(_scorer_scores(files / 'model'), cli)
    print(f'command line: largest |eat-pyiqa - Scorer| over {len(cli)} photos: {diff:.2e}')
    assert diff < EPS and "'mean'" in r.stdout
    assert M.main(['eat', '-t', str(files / 'photos')]) == 2  # no weights: the clear error, not random ones
    assert 'no public EAT weights' in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(pyiqa.utils.registry.Registry, 'register_lazy'),
                    reason=f"pyiqa {pyiqa.__version__} has no plugin entry points (0.1.16 has them)")
def test_plugin_entry_point_registers_eat_in_a_fresh_process(files, tmp_path):
    "The `pyiqa.archs` entry point that setup.py declares, installed as metadata: pyiqa finds it by itself when it "
    "first queries a registry, and `eat` is registered from then on (but not before: see eat.pyiqa_metric)."
    dist = tmp_path / 'eat_plugin_check-0.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: eat-plugin-check\nVersion: 0\n')
    (dist / 'entry_points.txt').write_text('[pyiqa.archs]\neat = eat.pyiqa_metric:pyiqa_plugin\n')
    code = ("import sys, pyiqa\nfrom pyiqa.default_model_configs import DEFAULT_CONFIGS\n"
            "from pyiqa.archs import build_network\n"
            "assert 'eat' not in DEFAULT_CONFIGS and 'eat.pyiqa_metric' not in sys.modules\n"
            f"net = build_network({{'type': 'EATMetric', 'weights': {str(files / 'model')!r}}})\n"
            "m = pyiqa.create_metric('eat', weights=" + repr(str(files / 'model')) + ", device='cpu')\n"
            f"print('score', m({str(files / 'photos' / '0.png')!r}).item())\n")
    r = _python(['-c', code], {'PYTHONPATH': str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    score = float(re.search(r'score ([-\d.e]+)', r.stdout).group(1))
    assert abs(score - _scorer_scores(files / 'model')['0.png']) < EPS
