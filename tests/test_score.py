"""eat-score end to end on a folder with good images and every kind of bad file; batch independence; overlays;
export parity."""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from eat.export import export_onnx, onnx_max_diff
from eat.model import create_model
from eat.score import Scorer, find_images, main
from eat.weights import save_weights

SMALL = dict(img_size=128, window_sizes=[8, 8, 8, 4])


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_weights(create_model('eat_micro_hybrid', **SMALL), tmp_path_factory.mktemp('w') / 'w.safetensors')


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(0)
    rgb = lambda w, h: Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    rgb(200, 150).save(d / 'good.jpg')
    (d / 'sub').mkdir()
    rgb(90, 120).save(d / 'sub' / 'nested.png')
    rgb(64, 64).convert('L').save(d / 'gray.jpg')
    rgb(64, 64).convert('CMYK').save(d / 'cmyk.jpg')
    rgb(64, 64).convert('RGBA').save(d / 'rgba.png')
    Image.fromarray(rng.integers(0, 65535, (40, 50), dtype=np.uint16)).save(d / 'deep16.png')
    rgb(64, 64).convert('P').save(d / 'palette.png')
    (d / 'zero.jpg').write_bytes(b'')
    (d / 'notes.jpg').write_text('this is not an image')
    good = (d / 'good.jpg').read_bytes()
    (d / 'truncated.jpg').write_bytes(good[: len(good) // 3])
    (d / 'garbage.jpg').write_bytes(b'\xff\xd8\xff\xe0' + rng.integers(0, 255, 2000, dtype=np.uint8).tobytes())
    Image.new('1', (12000, 9000)).save(d / 'bomb.png')  # 108 M pixels > Pillow's 89 M limit, a few kB on disk
    (d / 'readme.txt').write_text('not scored: not an image extension')
    return d


BAD = {'zero.jpg': ('zero_byte',), 'notes.jpg': ('not_image',), 'truncated.jpg': ('truncated',),
       'garbage.jpg': ('unreadable', 'truncated'),  # a JPEG header over noise: Pillow may call it either
       'bomb.png': ('huge',), 'missing.jpg': ('missing',)}


def test_cli_rows_errors_and_exit_status(folder, weights, tmp_path, capsys):
    out = tmp_path / 'scores.csv'
    code = main([str(folder), str(folder / 'missing.jpg'), '--weights', str(weights), '--out', str(out),
                 '--batch-size', '3', '--quiet'])
    assert code == 1
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ['path', 'score'] + [f'p{i}' for i in range(1, 11)] + ['std', 'error']
    names = [Path(p).name for p in table.path]
    assert 'readme.txt' not in names and 'nested.png' in names
    assert len(table) == 13
    for name, reasons in BAD.items():
        row = table[[n == name for n in names]].iloc[0]
        assert row.error.startswith(reasons), (name, row.error)
        assert row.score == ''  # no number for a failed file
    good = table[table.error == '']
    assert len(good) == 7
    scores = good.score.astype(float)
    assert scores.between(1, 10).all()
    probs = good[[f'p{i}' for i in range(1, 11)]].astype(float).to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(probs @ np.arange(1, 11), scores, atol=1e-6)
    assert (good['std'].astype(float) > 0).all()
    assert 'scored 7 of 13 images, 6 failed' in capsys.readouterr().err


def test_cli_json_and_console_script(folder, weights, tmp_path):
    out = tmp_path / 's.json'
    res = subprocess.run([str(Path(sys.executable).parent / 'eat-score'), str(folder / 'good.jpg'),
                          str(folder / 'gray.jpg'), '--weights', str(weights), '--out', str(out), '--tta'],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = json.loads(out.read_text())
    assert [Path(r['path']).name for r in rows] == ['good.jpg', 'gray.jpg']
    assert all(r['error'] == '' and 1 <= r['score'] <= 10 for r in rows)
    assert 'scored 2 of 2 images, 0 failed' in res.stderr
    # CSV on standard output, a failed file, exit status 1: all flushed before the console script's quick exit
    res = subprocess.run([str(Path(sys.executable).parent / 'eat-score'), str(folder), '--weights', str(weights),
                          '--quiet'], capture_output=True, text=True, timeout=300)
    table = pd.read_csv(io.StringIO(res.stdout), keep_default_na=False)
    n_bad = int((table.error != '').sum())
    assert res.returncode == 1 and len(table) - n_bad == 7 and n_bad > 0, res.stderr
    assert f'scored 7 of {len(table)} images, {n_bad} failed' in res.stderr


def test_cli_refuses_random_weights_unless_asked(folder, capsys):
    assert main([str(folder / 'good.jpg')]) == 2
    assert 'no trained weights' in capsys.readouterr().err
    assert main([str(folder / 'good.jpg'), '--random-weights', 'eat_micro', '--quiet']) == 0
    assert 'mean nothing' in capsys.readouterr().err


def test_cli_bad_options_are_clear(folder, weights, capsys):
    assert main([str(folder), '--weights', str(weights), '--out', 'x.xlsx']) == 2
    assert '.csv or .json' in capsys.readouterr().err
    assert main([str(folder), '--weights', str(folder / 'nope.safetensors')]) == 2
    assert 'No weights' in capsys.readouterr().err


def test_scores_do_not_depend_on_the_batch(folder, weights):
    scorer = Scorer.from_weights(weights, batch_size=5)
    files = find_images([folder])
    together = scorer.score_files(files, progress=False)
    scorer.batch_size = 1
    alone = scorer.score_files(files, progress=False)
    scorer.batch_size = 3
    reversed_ = scorer.score_files(files[::-1], progress=False)[::-1].reset_index(drop=True)
    ok = together.error == ''
    np.testing.assert_allclose(together.score[ok], alone.score[ok], atol=1e-5)
    np.testing.assert_allclose(together.score[ok], reversed_.score[ok], atol=1e-5)


def test_api_accepts_pil_and_tensors(weights):
    scorer = Scorer.from_weights(weights)
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (100, 140, 3), dtype=np.uint8))
    one = scorer.score(img)
    assert len(one) == 1 and one.error[0] == ''
    x = scorer.transform(img)
    np.testing.assert_allclose(scorer.score(x).score, one.score, atol=1e-6)
    np.testing.assert_allclose(scorer.score(torch.stack([x, x])).score, [one.score[0]] * 2, atol=1e-5)


def test_batch_pooling_model_is_refused(weights):
    model = create_model('eat_micro_hybrid', reference_pooling='batch', **SMALL)
    with pytest.raises(ValueError, match='depend on the batch'):
        Scorer(model)


def test_explain_writes_one_figure_per_image(folder, weights, tmp_path):
    figs = tmp_path / 'figs'
    code = main([str(folder / 'good.jpg'), str(folder / 'sub'), '--weights', str(weights), '--explain', str(figs),
                 '--quiet', '--out', str(tmp_path / 's.csv')])
    assert code == 0
    pngs = sorted(figs.glob('*.png'))
    assert [p.name for p in pngs] == ['00000_good.png', '00001_nested.png']
    assert all(p.stat().st_size > 20_000 for p in pngs)
    assert Image.open(pngs[0]).size[0] > 500


def test_compare_figure_renders(tmp_path):
    from eat.explain import compare_figure, save_figure
    img = Image.fromarray(np.random.default_rng(2).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    fig = compare_figure({'DAT': create_model('dat_micro', **SMALL), 'EAT': create_model('eat_micro', **SMALL)}, img)
    path = save_figure(fig, tmp_path / 'cmp.png')
    assert path.stat().st_size > 20_000


def test_onnx_export_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = create_model('eat_micro', **SMALL).eval()
    path = export_onnx(model, tmp_path / 'm.onnx')
    assert onnx_max_diff(model, path, batch=5) <= 1e-4
    import onnx
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert 'GridSample' not in ops and 'MatMul' in ops  # the deformable blocks sample with gathers and matmuls
    single = create_model('eat_micro_hybrid', num_classes=1, **SMALL).eval()
    assert onnx_max_diff(single, export_onnx(single, tmp_path / 's.onnx'), batch=2) <= 1e-4


def _copy_weights(weights, folder):
    import shutil
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ('.safetensors', '.json'): shutil.copy(weights.with_suffix(suffix), folder / f'w{suffix}')
    return folder / 'w.safetensors'


def test_onnxruntime_backend_matches_eager_and_caches_its_export(folder, weights, tmp_path, capsys):
    w = _copy_weights(weights, tmp_path / 'weights')
    common = [str(folder), '--weights', str(w), '--batch-size', '4', '--quiet']
    assert main(common + ['--out', str(tmp_path / 'eager.csv')]) == 1  # 1: the folder holds bad files on purpose
    capsys.readouterr()
    assert main(common + ['--out', str(tmp_path / 'ort.csv'), '--backend', 'onnxruntime']) == 1
    assert 'exporting the model to ONNX once' in capsys.readouterr().err
    eager = pd.read_csv(tmp_path / 'eager.csv', keep_default_na=False)
    ort = pd.read_csv(tmp_path / 'ort.csv', keep_default_na=False)
    assert list(ort.path) == list(eager.path) and list(ort.error) == list(eager.error)
    ok = eager.error == ''
    assert ok.sum() == 7
    for col in ['score', 'std'] + [f'p{i}' for i in range(1, 11)]:
        np.testing.assert_allclose(ort[col][ok].astype(float), eager[col][ok].astype(float), atol=1e-4)
    cached = sorted(w.parent.glob('*.onnx'))
    assert len(cached) == 1 and cached[0].name.startswith('w.')
    mtime = cached[0].stat().st_mtime_ns
    # second run: the cached file is reused, not exported again
    assert main(common + ['--out', str(tmp_path / 'ort2.csv'), '--backend', 'onnxruntime']) == 1
    assert 'exporting' not in capsys.readouterr().err
    assert cached[0].stat().st_mtime_ns == mtime and sorted(w.parent.glob('*.onnx')) == cached
    again = pd.read_csv(tmp_path / 'ort2.csv', keep_default_na=False)
    np.testing.assert_allclose(again.score[ok].astype(float), ort.score[ok].astype(float), atol=1e-7)
    # a new process finds the export by its link, from the weight files alone: no model code and no timm imported
    args = common + ['--out', str(tmp_path / 'ort4.csv'), '--backend', 'onnxruntime']
    code = f"import sys; from eat.score import main; rc = main({args!r}); print(rc, 'eat.model' in sys.modules, 'timm' in sys.modules)"
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert res.stdout.split()[-3:] == ['1', 'False', 'False'], res.stderr
    linked = pd.read_csv(tmp_path / 'ort4.csv', keep_default_na=False)
    np.testing.assert_allclose(linked.score[ok].astype(float), ort.score[ok].astype(float), atol=1e-7)
    # new weights at the same path: another key, another export (a stale file is never reused)
    torch.manual_seed(1)
    save_weights(create_model('eat_micro_hybrid', **SMALL), w)
    assert main(common + ['--out', str(tmp_path / 'ort3.csv'), '--backend', 'onnxruntime']) == 1
    assert 'exporting' in capsys.readouterr().err
    assert len(list(w.parent.glob('*.onnx'))) == 2


def test_onnxruntime_scorer_api_and_tta(weights):
    img = Image.fromarray(np.random.default_rng(3).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    eager = Scorer.from_weights(weights, tta=True).score(img)
    ort = Scorer.from_weights(weights, tta=True, backend='onnxruntime').score(img)
    np.testing.assert_allclose(ort.score, eager.score, atol=1e-4)
    with pytest.raises(ValueError, match='runs on the CPU'):
        Scorer.from_weights(weights, backend='onnxruntime', device='cuda')


def test_missing_onnxruntime_names_the_extra(folder, weights, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # `import onnxruntime` now raises ImportError
    assert main([str(folder / 'good.jpg'), '--weights', str(weights), '--backend', 'onnxruntime', '--quiet']) == 2
    err = capsys.readouterr().err
    assert "pip install 'eat[export]'" in err and 'onnxruntime' in err
    with pytest.raises(ImportError, match=r"the 'export' extra"):
        Scorer.from_weights(weights, backend='onnxruntime')
    assert main([str(folder / 'good.jpg'), '--weights', str(weights), '--quiet']) == 0  # eager needs no extra


def test_compile_flag_reaches_torch_compile(folder, weights, monkeypatch, tmp_path):
    real, calls = torch.compile, []
    def spy(model, **kw):  # record the call; compile with the eager backend (inductor takes minutes on 2 cores)
        calls.append(kw)
        return real(model, **{**kw, 'backend': 'eager'})
    monkeypatch.setattr(torch, 'compile', spy)
    files = [str(folder / 'good.jpg'), str(folder / 'gray.jpg'), str(folder / 'sub')]
    eager = Scorer.from_weights(weights, batch_size=2).score(files)
    compiled = Scorer.from_weights(weights, batch_size=2, compile=True).score(files)  # last batch of 1: padded
    np.testing.assert_allclose(compiled.score, eager.score, atol=1e-5)
    assert calls == [{'dynamic': False}]
    assert main(files + ['--weights', str(weights), '--compile', '--quiet', '--out', str(tmp_path / 'c.csv')]) == 0
    assert len(calls) == 2
    with pytest.raises(ValueError, match='eager backend'):
        Scorer.from_weights(weights, backend='onnxruntime', compile=True)
