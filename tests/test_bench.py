"""The benchmark's smoke mode runs and writes sane results (behaviour only: no timing is asserted)."""
import csv
import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
import bench  # noqa: E402


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    bench.main(['--smoke', '--out', str(out / 'results'), '--dir', str(out / 'data')])
    return out / 'results'


def test_smoke_writes_csv_plot_and_machine_info(smoke):
    rows = list(csv.DictReader(open(smoke / 'bench.csv')))
    sections = {r['section'] for r in rows}
    assert {'model', 'overhead', 'memory', 'roofline', 'loading', 'scaling_epoch', 'scaling_batch'} <= sections
    for r in rows:
        assert math.isfinite(float(r['value'])) and math.isfinite(float(r['ratio'])), r
        if r['metric'] in ('images_per_s', 'gflop_per_s', 'seconds_per_epoch', 'peak_mb'):
            assert float(r['value']) > 0, r
    names = {(r['section'], r['name'], r['mode']) for r in rows}
    for mode in ('infer', 'train'):
        assert {('model', m, mode) for m in ('eat', 'dat', 'swin')} <= names
    assert {('loading', m, 'decode+transform') for m in ('plain', 'draft', 'cached')} <= names
    png = (smoke / 'bench.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000
    info = json.loads((smoke / 'machine.json').read_text())
    for key in ('cpu_model', 'cpu_count', 'torch', 'torch_threads', 'load_avg_start', 'load_avg_end'):
        assert key in info, key
    assert info['smoke'] is True and len(info['load_avg_end']) == 3


def test_ratios_are_relative_to_the_named_reference(smoke):
    rows = list(csv.DictReader(open(smoke / 'bench.csv')))
    ref = {r['mode']: float(r['value']) for r in rows if r['section'] == 'model' and r['name'] == 'swin'}
    for r in rows:
        if r['section'] == 'model':
            assert float(r['ratio']) == pytest.approx(float(r['value']) / ref[r['mode']], rel=1e-3)
    plain = next(float(r['value']) for r in rows if r['section'] == 'loading' and r['name'] == 'plain')
    for r in rows:
        if r['section'] == 'loading':
            assert float(r['ratio']) == pytest.approx(float(r['value']) / plain, rel=1e-3)


def test_smoke_side_by_side_and_memory_tables(smoke):
    side = list(csv.DictReader(open(smoke / 'side_by_side.csv')))
    assert {(r['name'], r['mode']) for r in side} == {(n, m) for n in ('eat', 'eat_compiled', 'swin')
                                                      for m in ('infer', 'train')}
    for r in side:
        assert float(r['images_per_s']) > 0 and math.isfinite(float(r['vs_swin']))
        assert r['vs_original'] == ''  # no --original checkout given
    compiled = next(r for r in side if r['name'] == 'eat_compiled')
    assert float(compiled['compile_s']) > 0
    mem = list(csv.DictReader(open(smoke / 'memory_b32.csv')))
    assert {(r['name'], r['grad_checkpointing']) for r in mem} == {(n, c) for n in ('eat', 'swin')
                                                                   for c in ('False', 'True')}
    assert all(float(r['peak_mb']) > 0 for r in mem)
    for name in ('side_by_side.json', 'memory_b32.json'):
        info = json.loads((smoke / name).read_text())
        assert {'git_commit', 'cpu_model', 'load_avg_start', 'load_avg_end'} <= set(info)


def test_original_checkout_errors_are_clear(tmp_path):
    from original import load_original
    with pytest.raises(FileNotFoundError, match='not a checkout of the original EAT repository'):
        load_original(tmp_path)


ORIGINAL = Path(__file__).resolve().parents[2] / 'orig_eat'


@pytest.mark.skipif(not (ORIGINAL / 'AVA' / 'models' / 'dat_blocks.py').is_file(),
                    reason='no checkout of the original EAT code beside the project')
def test_original_model_builds_like_eat_tiny():
    pytest.importorskip('einops')
    import torch
    from original import load_original
    from eat.model import create_model
    orig = load_original(ORIGINAL)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(orig) == n(create_model('eat_tiny'))
    with torch.no_grad(): assert orig.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_bench_score_smoke(tmp_path):
    import bench_score
    res = bench_score.main(['--smoke', '--out', str(tmp_path / 'r'), '--dir', str(tmp_path / 'd')])
    rows = list(csv.DictReader(open(tmp_path / 'r' / 'score_backends.csv')))
    assert [r['name'] for r in rows] == ['eager', 'onnxruntime', 'openvino', 'onnx_export_once', 'openvino_convert_once']
    for r in rows[1:3]:
        assert float(r['ratio']) == pytest.approx(float(rows[0]['seconds']) / float(r['seconds']), rel=1e-3)
        assert float(r['max_abs_score_diff']) <= 1e-4
    assert res['info']['max_abs_score_diff'].keys() == {'onnxruntime', 'openvino'}
    assert res['info']['fastest'] in ('eager', 'onnxruntime', 'openvino')
    info = json.loads((tmp_path / 'r' / 'score_backends.json').read_text())
    assert {'git_commit', 'load_avg_start', 'load_avg_end', 'photos', 'fastest_ratio'} <= set(info)
    weights = tmp_path / 'd' / 'weights'
    assert len(list(weights.glob('*.onnx'))) == len(list(weights.glob('*.openvino.xml'))) == 1  # reused every round


def test_gpu_check_refuses_without_a_gpu(tmp_path):
    import subprocess
    import torch
    if torch.cuda.is_available(): pytest.skip('a GPU is present')
    script = Path(__file__).resolve().parents[1] / 'benchmarks' / 'gpu_check.sh'
    res = subprocess.run([str(script), '--out', str(tmp_path / 'gpu')], capture_output=True, text=True, timeout=120,
                         env={**__import__('os').environ, 'PY': sys.executable})
    assert res.returncode == 3, res.stderr
    assert 'no CUDA GPU is visible' in res.stderr and 'nothing was measured' in res.stderr
    assert not (tmp_path / 'gpu').exists()


def test_gpu_check_code_paths_on_cpu(tmp_path):
    import gpu_check
    assert gpu_check.main(['--cpu-dry-run', '--out', str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / 'throughput.csv')))
    assert {(r['model'], r['variant'], r['mode']) for r in rows} == {
        (m, v, d) for m in ('eat', 'swin') for v in ('eager_fp32', 'eager_bf16', 'compiled_bf16')
        for d in ('infer', 'train')}
    smoke = list(csv.DictReader(open(tmp_path / 'smoke.csv')))
    assert smoke and all(math.isfinite(float(r['loss_mean_last10'])) for r in smoke)
    info = json.loads((tmp_path / 'machine.json').read_text())
    assert info['cpu_dry_run'] is True and info['smoke']['steps'] == 12


def test_blocks_breakdown_names_every_part(tmp_path):
    import blocks
    text = blocks.main(['--batch', '1', '--repeats', '1', '--out', str(tmp_path)])
    assert (tmp_path / 'blocks.txt').read_text().strip() == text
    rows = {l[:26].strip(): l[26:].split() for l in text.splitlines()[2:] if not l.startswith(('inference', 'fwd'))}
    for part in ('eat stem', 'swin stem', 'eat down 3', 'eat stage 4', 'swin stage 4', 'eat stage-3 D block',
                 'swin stage-3 block', 'eat stage-3 D attention', 'swin stage-3 attention'):
        assert len(rows[part]) == 2 and all(float(v) > 0 for v in rows[part]), part
    assert 'swin / eat' in text.splitlines()[-1]
