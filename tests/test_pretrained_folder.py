"""Model folders (config.json + model.safetensors + README.md): saved, loaded by every loader (EAT.from_pretrained,
timm's local-dir:, load_model, eat-score, eat-evaluate), at other input sizes; clear errors, Hub ids offline."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image

from eat.model import EAT, EATOutput, create_model
from eat.weights import load_model, load_pretrained, save_pretrained

BIN = Path(sys.executable).parent
CARD = dict(dataset='synthetic AVA-format images (made up for this test)', split='seeded 60/20/20 (seed 0)',
            metrics={'test_srcc': {'value': 0.61, 'ci': [0.5, 0.7]}, 'test_plcc': (0.6, 0.49, 0.71), 'test_acc': 0.7},
            commit='0123abc', name='eat-micro-test')


def _run(exe, args):
    "Run an installed command (as a user would) and fail with its output."
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([str(BIN / exe), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"{exe} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = create_model('eat_micro').eval()
    with torch.no_grad():  # a non-trivial head and tables, so that a wrong load would show
        for n, p in m.named_parameters():
            if 'rpe_table' in n or 'relative_position_bias_table' in n or n.startswith('cls_head'): p.normal_(0, 0.1)
    return m


@pytest.fixture(scope='module')
def folder(model, tmp_path_factory):
    return save_pretrained(model, tmp_path_factory.mktemp('models') / 'eat-micro', card=CARD)


def test_folder_layout_and_config(folder, model):
    assert sorted(p.name for p in folder.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    cfg = json.loads((folder / 'config.json').read_text())
    assert cfg['architecture'] == 'eat_micro' and cfg['num_classes'] == 10 and cfg['num_features'] == 256
    p = cfg['pretrained_cfg']
    assert p['input_size'] == [3, 224, 224] and p['pool_size'] == [7, 7]
    assert (p['classifier'], p['first_conv']) == ('cls_head', 'patch_proj.0')
    assert cfg['model_args']['dims'] == model.cfg.dims and 'output' not in cfg['model_args']
    assert cfg['eat']['config']['head'] == 'auto' and cfg['eat']['card']['commit'] == '0123abc'


def test_model_card(folder):
    text = (folder / 'README.md').read_text()
    assert text.startswith('---\nlibrary_name: timm') and '# eat-micro-test' in text
    for line in ['- Data set: synthetic AVA-format images', '- Split protocol: seeded 60/20/20 (seed 0)',
                 '- Commit: 0123abc', '| test_srcc | 0.6100 | 0.5000 to 0.7000 |',
                 '| test_plcc | 0.6000 | 0.4900 to 0.7100 |', '| test_acc | 0.7000 | not given |']:
        assert line in text, line


def test_card_says_what_is_unknown(model, tmp_path):
    text = (save_pretrained(model, tmp_path / 'm') / 'README.md').read_text()
    for what in ('Data set', 'Split protocol', 'Commit'):
        assert f'- {what}: unknown' in text
    assert 'Metrics: unknown' in text


def test_every_loader_gives_the_same_model(folder, model):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)
        for loaded in (EAT.from_pretrained(folder), load_model(folder), load_model(f'local-dir:{folder}')):
            out = loaded(x)
            assert isinstance(out, EATOutput) and torch.equal(out.logits, ref.logits)
        net = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
        assert isinstance(net, EAT) and net.pretrained_cfg['source'] == 'local-dir'
        torch.testing.assert_close(net(x), ref.logits, rtol=0, atol=1e-6)  # timm's way: the head's tensor


def test_other_input_sizes(folder):
    """A 224 px folder at 448 px (same 7 px windows) and at 384 px with 12 px windows (as EAT-B-384), through
    our loader and timm's own; the two resize the tables the same way."""
    for size, kw, resized in [(448, {}, {'rpe_table'}), (384, dict(window_size=12),
                                                         {'rpe_table', 'relative_position_bias_table'})]:
        ours = EAT.from_pretrained(folder, img_size=size, **kw)
        theirs = timm.create_model(f'local-dir:{folder}', pretrained=True, img_size=size, **kw).eval()
        assert ours.cfg.img_size == theirs.cfg.img_size == size
        a, b = ours.state_dict(), theirs.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
        saved = load_pretrained(folder).state_dict()
        assert {k.rsplit('.', 1)[-1] for k in a if a[k].shape != saved[k].shape} == resized
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            out = ours(x)
            torch.testing.assert_close(theirs(x), out.logits, rtol=0, atol=1e-5)
        assert out.score.shape == (2,) and torch.isfinite(out.score).all()


def test_custom_config_rebuilds_exactly(tmp_path):
    torch.manual_seed(1)
    m = EAT(img_size=128, dim_stem=16, dims=[16, 32, 64, 128], depths=[1, 1, 2, 1],
            stage_spec=[['L'], ['S'], ['L', 'D'], ['D']], heads=[1, 2, 2, 4], groups=[-1, -1, 1, 2],
            window_sizes=[4, 4, 4, 4], num_classes=1, damping=0.5).eval()
    d = save_pretrained(m, tmp_path / 'custom')
    assert 'custom configuration' in (d / 'README.md').read_text()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(EAT.from_pretrained(d)(x).score, m(x).score)
        net = timm.create_model(f'local-dir:{d}', pretrained=True).eval()
        torch.testing.assert_close(net(x)[:, 0] * 10, m(x).score, rtol=0, atol=1e-5)


def test_offset_rule_state_survives(model, tmp_path):
    model.set_exploration(False)
    try: d = save_pretrained(model, tmp_path / 'exploit')
    finally: model.set_exploration(True)
    loaded = EAT.from_pretrained(d)
    assert not any(getattr(m, 'rule_on', True) for m in loaded.modules() if hasattr(m, 'rule_on'))


def test_clear_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match='No model folder'): EAT.from_pretrained(tmp_path / 'nowhere')
    (tmp_path / 'half').mkdir()
    (tmp_path / 'half' / 'config.json').write_text('{}')
    with pytest.raises(FileNotFoundError, match='lacks model.safetensors'): load_model(tmp_path / 'half')
    with pytest.raises(ValueError, match='carries its own config'): load_model(folder, 'dat_micro.yaml')
    with pytest.raises(TypeError, match='Unknown EAT option'): EAT.from_pretrained(folder, windw_size=12)
    with pytest.raises(ValueError, match='window_sizes'): EAT.from_pretrained(folder, img_size=256)


@pytest.mark.parametrize('source', ['someorg/eat-micro-ava', 'hf-hub:someorg/eat-micro-ava@v1'])
def test_hub_id_without_network_says_what_to_do(source, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)  # no test needs the network
    with pytest.raises(OSError) as e: EAT.from_pretrained(source)
    msg = str(e.value)
    assert "'someorg/eat-micro-ava'" in msg and 'hf download someorg/eat-micro-ava --local-dir DIR' in msg
    if source.startswith('hf-hub:'):
        with pytest.raises(OSError, match='someorg/eat-micro-ava'): load_model(source)


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    from eat.synth import make_synthetic_ava
    return make_synthetic_ava(tmp_path_factory.mktemp('synth') / 's64', n=40, size=64, seed=0, progress=False)


def test_eat_score_and_eat_evaluate_take_a_folder(synth, tmp_path):
    torch.manual_seed(0)
    m = create_model('eat_micro', img_size=64, window_sizes=[4, 4, 4, 2]).eval()
    d = save_pretrained(m, tmp_path / 'run' / 'best_model', card=dict(dataset='synthetic'))
    img = tmp_path / 'a.jpg'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(img)
    _run('eat-score', ['--weights', d, img, '--out', tmp_path / 's.csv', '--quiet'])
    scored = pd.read_csv(tmp_path / 's.csv')
    from eat.score import Scorer
    expected = Scorer(load_model(d), 'cpu', 'ava').score_files([img], progress=False)
    assert np.isclose(scored.score[0], expected.score[0], atol=1e-4)
    args = ['--weights', d, '--config', 'tiny', '--split', 'test', '--out', tmp_path / 'eval', f'data.root={synth}',
            'data.synth_n=40', 'data.synth_size=64', 'data.img_size=64', 'data.fractions=[0.6, 0.2, 0.2]']
    _run('eat-evaluate', args)
    metrics = json.loads((tmp_path / 'eval' / 'metrics_test.json').read_text())
    pred = pd.read_csv(tmp_path / 'eval' / 'predictions_test.csv')
    assert metrics['n'] == len(pred) == 8 and np.isfinite(metrics['srcc'])
