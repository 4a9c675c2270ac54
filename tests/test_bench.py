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
