"""The synthetic AVA-format generator and the pretraining stream (eat.synth): determinism, the AVA round trip,
the documented score formula, AVA-like statistics, the CLI, and that the factors really change the pixels."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from eat.data import DIST_COLS, read_ava, read_synthetic
from eat.synth import (BG_WEIGHTS, FG_WEIGHTS, NOISE_SD, SyntheticScenes, latent_score, main, make_synthetic_ava,
                       render_scene, sample_scene, sample_votes, scene_factors)

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = make_synthetic_ava(tmp_path / "a", n=40, size=48, seed=11, workers=1, progress=False)
    b = make_synthetic_ava(tmp_path / "b", n=40, size=48, seed=11, workers=2, progress=False)
    c = make_synthetic_ava(tmp_path / "c", n=40, size=48, seed=12, workers=1, progress=False)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert len(fa) == 40 + 3 and fa == fb
    assert fa["AVA.txt"] != fc["AVA.txt"] and fa["images/1.jpg"] != fc["images/1.jpg"]


def test_ava_round_trip(tmp_path):
    "Generate, read back with the plain AVA reader, and regenerate the targets from the public functions."
    seed, n = 5, 30
    root = make_synthetic_ava(tmp_path / "s", n=n, size=40, seed=seed, progress=False)
    lines = (root / "AVA.txt").read_text().splitlines()
    assert len(lines) == n and all(len(line.split()) == 15 for line in lines)
    t = read_ava(root / "AVA.txt", root / "images")
    for i in range(n):
        rng = np.random.default_rng([seed, 0, i])
        p = sample_scene(rng)
        lat = latent_score(scene_factors(p)["q"], float(rng.normal(0, NOISE_SD)))
        votes = sample_votes(rng, lat)
        row = t.iloc[i]
        assert row.image_id == str(i + 1) and row.n_votes == votes.sum()
        np.testing.assert_allclose(row[DIST_COLS].to_numpy(float), votes / votes.sum())
        assert row.score == pytest.approx((votes * np.arange(1, 11)).sum() / votes.sum())
        np.testing.assert_array_equal(np.asarray(Image.open(row.path)).shape, (40, 40, 3))
    s = read_synthetic(root)
    assert s.attrs["dataset"] == "synthetic" and s.bg_sensitive.dtype == bool
    np.testing.assert_allclose(s.score, t.score)


def test_documented_formula_holds(tmp_path):
    s = read_synthetic(make_synthetic_ava(tmp_path / "s", n=80, size=32, seed=0, progress=False))
    q_fg = sum(w * s[k] for k, w in FG_WEIGHTS.items())
    q_bg = sum(w * s[k] for k, w in BG_WEIGHTS.items())
    np.testing.assert_allclose(q_fg, s.q_fg, atol=1e-5)
    np.testing.assert_allclose(q_bg, s.q_bg, atol=1e-5)
    np.testing.assert_allclose((1 - s.alpha) * q_fg + s.alpha * q_bg, s.q, atol=1e-5)
    assert (s.bg_sensitive == (s.alpha > 0.5)).all() and (s.bg_sensitive == (s.radius < 0.16)).all()
    # background-sensitive images: the score follows the background more than the foreground
    bg, fg = s[s.bg_sensitive], s[~s.bg_sensitive]
    assert np.corrcoef(bg.q_bg, bg.latent_score)[0, 1] > np.corrcoef(bg.q_fg, bg.latent_score)[0, 1]
    assert np.corrcoef(fg.q_fg, fg.latent_score)[0, 1] > np.corrcoef(fg.q_bg, fg.latent_score)[0, 1]


def test_statistics_close_to_ava(tmp_path):
    s = read_synthetic(make_synthetic_ava(tmp_path / "s", n=600, size=24, seed=1, workers=2, progress=False))
    assert 5.2 < s.score.mean() < 5.6 and 0.55 < s.score.std() < 0.9
    assert s.score.between(3.5, 7.5).mean() > 0.97
    assert 180 < s.n_votes.mean() < 220 and 0.25 < s.bg_sensitive.mean() < 0.45


def test_factors_change_the_pixels():
    "Sharpness and bokeh are visible: blur lowers the high-frequency energy where it should."
    p = {**sample_scene(np.random.default_rng(0)), "radius": 0.3, "cx": 0.5, "cy": 0.5, "n_clutter": 20}
    def hf(a, region):
        g = a.astype(float).mean(2)
        lap = np.abs(4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:])
        return lap[region].mean()
    centre, corner = (slice(50, 78), slice(50, 78)), (slice(0, 20), slice(0, 20))
    sharp, soft = render_scene({**p, "f_sharp": 1.0}, 128), render_scene({**p, "f_sharp": 0.0}, 128)
    assert hf(sharp, centre) > 2 * hf(soft, centre)
    crisp, bokeh = render_scene({**p, "b_bokeh": 0.0}, 128), render_scene({**p, "b_bokeh": 1.0}, 128)
    assert (crisp != bokeh).any() and hf(crisp, (slice(None), slice(None))) > hf(bokeh, (slice(None), slice(None)))


def test_overwrite_rules(tmp_path):
    root = make_synthetic_ava(tmp_path / "s", n=5, size=24, seed=0, progress=False)
    before = (root / "AVA.txt").stat().st_mtime_ns
    assert make_synthetic_ava(root, n=5, size=24, seed=0, progress=False) == root
    assert (root / "AVA.txt").stat().st_mtime_ns == before  # same request: nothing rewritten
    with pytest.raises(FileExistsError, match="overwrite"):
        make_synthetic_ava(root, n=6, size=24, seed=0, progress=False)
    make_synthetic_ava(root, n=6, size=24, seed=0, overwrite=True, progress=False)
    assert len(list((root / "images").glob("*.jpg"))) == 6 and json.loads((root / "meta.json").read_text())["n"] == 6


def test_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "eat.synth", str(tmp_path / "out"), "--n", "25", "--size", "32", "--seed", "3",
           "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "25 images 32px seed 3" in r.stdout and "background-sensitive" in r.stdout
    assert (tmp_path / "out" / "AVA.txt").is_file() and len(list((tmp_path / "out" / "images").iterdir())) == 25
    ref = make_synthetic_ava(tmp_path / "ref", n=25, size=32, seed=3, progress=False)
    assert (ref / "AVA.txt").read_bytes() == (tmp_path / "out" / "AVA.txt").read_bytes()


def test_cli_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "x"), "--n", "0"])
    assert e.value.code == 2 and "n=0" in capsys.readouterr().err


def test_pretraining_stream_deterministic_per_seed_and_worker():
    ds = SyntheticScenes(size=32, seed=4, length=12)
    ref = [ds.sample(i) for i in range(12)]
    assert all(0 <= y < ds.num_classes for _, y in ref) and len({y for _, y in ref}) > 2
    single = list(ds)
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(single, ref))
    # two workers: worker k yields samples k, k + 2, ...; together exactly the same samples
    got = [(x, y) for xb, yb in DataLoader(ds, batch_size=3, num_workers=2) for x, y in zip(xb, yb.tolist())]
    key = lambda xy: (xy[1], round(float(xy[0].sum()), 3))
    assert sorted(map(key, got)) == sorted(map(key, ref))
    other = SyntheticScenes(size=32, seed=5, length=12)
    assert not torch.equal(other.sample(0)[0], ref[0][0])
    j = SyntheticScenes(size=32, seed=4, labels="joint")
    assert j.num_classes == 32 and "/" in j.class_name(j.sample(0)[1])
    with pytest.raises(TypeError, match="unlimited"):
        len(SyntheticScenes())
