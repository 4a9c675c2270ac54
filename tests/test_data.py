"""Readers, splits, the Dataset/loader and the pre-resized cache (eat.data, eat.images) on small data made here."""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from eat.data import (DIST_COLS, check_leakage, file_sha256, load_split, make_split, read_aadb, read_ava, read_csv_labels,
                      read_flickr_aes, read_tad66k, save_split, split_from_file)
from eat.datasets import IAADataset, make_loader
from eat.images import PRESETS, BadImageError, ImageCache, build_transform, open_image

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)  # avoid OpenMP spin-waiting on a shared 2-core machine


def _smooth(w, h, seed):
    "A smooth photo-like RGB image (JPEG-friendly)."
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3), np.uint8))
    return small.resize((w, h), Image.BICUBIC)


@pytest.fixture
def ava(tmp_path):
    "Five AVA images with known votes; returns (AVA.txt, image dir, counts)."
    img = tmp_path / "images"
    img.mkdir()
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 40, (5, 10))
    lines = []
    for k, c in enumerate(counts):
        iid = 100 + k
        _smooth(96, 72, k).save(img / f"{iid}.jpg", quality=92)
        lines.append(f"{k + 1} {iid} {' '.join(map(str, c))} {k} 0 1396")
    (tmp_path / "AVA.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "AVA.txt", img, counts


# ---------------------------------------------------------------- readers
def test_read_ava_targets(ava):
    txt, img, counts = ava
    t = read_ava(txt, img)
    assert list(t.image_id) == [str(100 + k) for k in range(5)]
    p = counts / counts.sum(1, keepdims=True)
    np.testing.assert_allclose(t[DIST_COLS].to_numpy(), p)
    np.testing.assert_allclose(t.score, (p * np.arange(1, 11)).sum(1))
    np.testing.assert_array_equal(t.n_votes, counts.sum(1))
    assert t.attrs["source_sha256"] == file_sha256(txt) and t.attrs["dataset"] == "ava"
    assert all(Path(x).exists() for x in t.path)


@pytest.mark.parametrize("text,msg", [("1 2 3\n", "expected 15"), ("1 7 a 0 0 0 0 0 0 0 0 0 0 0 1\n", "integers"),
                                      ("1 7 1 0 0 0 0 0 0 0 0 0 0 0 1\n2 7 1 0 0 0 0 0 0 0 0 0 0 0 1\n", "duplicate")])
def test_read_ava_bad_files(tmp_path, text, msg):
    (tmp_path / "AVA.txt").write_text(text)
    with pytest.raises(ValueError, match=msg):
        read_ava(tmp_path / "AVA.txt", tmp_path)


def test_read_tad66k_and_csv_and_others(tmp_path):
    (tmp_path / "tad.csv").write_text("image,score\n11.jpg,6.1\n12,4.0\n")
    t = read_tad66k(tmp_path / "tad.csv", tmp_path)
    assert list(t.image_id) == ["11", "12"] and t.path[1].endswith("12.jpg") and list(t.score) == [6.1, 4.0]
    assert t[DIST_COLS].isna().all().all()

    (tmp_path / "s.csv").write_text("path,score,extra\nx/a.jpg,0.5,q\nx/b.jpg,0.25,r\n")
    c = read_csv_labels(tmp_path / "s.csv", tmp_path)
    assert list(c.score) == [0.5, 0.25] and list(c.extra) == ["q", "r"] and c.path[0] == str(tmp_path / "x/a.jpg")

    cols = ",".join(f"votes_{k}" for k in range(1, 11))
    (tmp_path / "v.csv").write_text(f"image,{cols}\na.jpg,{','.join(['0'] * 9 + ['4'])}\n")
    v = read_csv_labels(tmp_path / "v.csv")
    assert v.score[0] == 10.0 and v.p10[0] == 1.0 and v.n_votes[0] == 4

    (tmp_path / "aadb.csv").write_text("ImageFile,ColorHarmony,score\nfarm1_1.jpg,0.3,0.8\nfarm1_2.jpg,-0.2,0.4\n")
    a = read_aadb(tmp_path / "aadb.csv", tmp_path)
    assert list(a.score) == [0.8, 0.4] and "ColorHarmony" in a

    (tmp_path / "fl.csv").write_text(" worker, imagePair, score\nw1, i1.jpg, 1\nw2, i1.jpg, 2\nw3, i1.jpg, 3\n")
    f = read_flickr_aes(tmp_path / "fl.csv", tmp_path)
    assert f.score[0] == 2.0 and f.n_votes[0] == 3 and f.score_std[0] == 1.0

    with pytest.raises(FileNotFoundError, match="not found"):
        read_tad66k(tmp_path / "nope.csv", tmp_path)
    (tmp_path / "x.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(ValueError, match="path"):
        read_csv_labels(tmp_path / "x.csv")


# ---------------------------------------------------------------- splits
def _table(n=500):
    return pd.DataFrame({"image_id": [f"{i:05d}" for i in range(n)], "path": [f"{i}.jpg" for i in range(n)],
                         "score": np.random.default_rng(0).uniform(2, 8, n)})


def test_split_same_seed_same_bytes(tmp_path):
    t = _table()
    a = save_split(make_split(t, seed=7), tmp_path / "a" / "split.csv")
    b = save_split(make_split(t.sample(frac=1, random_state=1), seed=7), tmp_path / "b" / "split.csv")
    c = save_split(make_split(t, seed=8), tmp_path / "c" / "split.csv")
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    prov = json.loads(a.with_suffix(".json").read_text())
    assert prov["seed"] == 7 and prov["counts"] == {"train": 450, "val": 25, "test": 25}
    assert prov["csv_sha256"] == file_sha256(a)


def test_split_provenance_from_ava(ava, tmp_path):
    txt, img, _ = ava
    s = make_split(read_ava(txt, img), seed=0, fractions=(0.6, 0.2, 0.2), exclude=["104"])
    p = save_split(s, tmp_path / "split.csv")
    prov = json.loads(p.with_suffix(".json").read_text())
    assert prov["source_sha256"] == file_sha256(txt) and prov["n_excluded"] == 1 and prov["n_total"] == 4
    back = load_split(p)
    assert back.image_id.tolist() == sorted(s.image_id) and back.attrs["seed"] == 0


def test_leakage_is_refused(tmp_path):
    s = make_split(_table(50), 0)
    leak = pd.concat([s, s.iloc[[0]].assign(split="test" if s.split.iloc[0] != "test" else "train")])
    with pytest.raises(ValueError, match="more than one split"):
        check_leakage(leak)
    with pytest.raises(ValueError, match="duplicate rows"):
        check_leakage(pd.concat([s, s.iloc[[3]]]))
    samefile = s.copy()
    samefile.loc[samefile.index[1], "path"] = samefile.path.iloc[0]
    samefile.loc[samefile.index[1], "split"] = "val" if samefile.split.iloc[0] != "val" else "test"
    with pytest.raises(ValueError, match="paths are in more than one split"):
        check_leakage(samefile)
    with pytest.raises(ValueError, match="leakage"):
        save_split(leak, tmp_path / "x.csv")
    p = save_split(s, tmp_path / "ok.csv")
    p.write_text(p.read_text().replace(",train", ",test", 1))
    with pytest.raises(ValueError, match="changed after save_split"):
        load_split(p)


def test_split_from_user_file(tmp_path):
    t = _table(100)
    (tmp_path / "test.txt").write_text("\n".join(["00001.jpg", "00002", "99999"]) + "\n")
    with pytest.warns(UserWarning, match="1 listed ids are not in the table"):
        s = split_from_file(t, tmp_path / "test.txt", val_fraction=0.1, seed=0)
    assert check_leakage(s) == {"train": 88, "val": 10, "test": 2}
    assert s.attrs["split_file_sha256"] == file_sha256(tmp_path / "test.txt")
    (tmp_path / "s.csv").write_text("image_id,split\n00001,val\n00002,test\n00002,train\n")
    with pytest.raises(ValueError, match="twice"):
        split_from_file(t, tmp_path / "s.csv")


# ---------------------------------------------------------------- dataset, loader
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_dataset_items(ava, preset):
    txt, img, counts = ava
    ds = IAADataset(read_ava(txt, img), transform=build_transform(preset, train=True, img_size=64))
    x = ds[1]
    assert x["image"].shape == (3, 64, 64) and x["image"].dtype == torch.float32
    np.testing.assert_allclose(x["dist"].numpy(), counts[1] / counts[1].sum(), rtol=1e-6)
    assert x["score"].shape == () and bool(x["has_dist"]) and x["index"] == 1
    b = next(iter(make_loader(ds, batch_size=5)))
    assert b["image"].shape == (5, 3, 64, 64) and b["dist"].shape == (5, 10) and b["score"].shape == (5,)


def test_loader_survives_bad_files_with_workers(ava, tmp_path):
    txt, img, _ = ava
    (img / "101.jpg").write_bytes((img / "101.jpg").read_bytes()[:300])  # truncated
    (img / "103.jpg").write_bytes(b"")  # zero bytes
    (img / "104.jpg").unlink()  # missing
    ds = IAADataset(read_ava(txt, img), transform=build_transform("ava", True, 32))
    dl = make_loader(ds, batch_size=2, shuffle=True, num_workers=2, seed=0)
    for epoch in range(2):
        with pytest.warns(UserWarning, match="skipped 3 of 5"):
            seen = [i for b in dl for i in b["index"].tolist()]
        assert sorted(seen) == [0, 2]
    assert dl.n_skipped == 6 and dl.skipped_epoch == 3
    assert {k: v.split(":")[0] for k, v in dl.skipped.items()} == {1: "truncated", 3: "zero_byte", 4: "missing"}


# ---------------------------------------------------------------- cache
def test_cache_matches_uncached_and_rebuilds(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(4):
        p = src / f"{i}.jpg"
        _smooth(640, 480, i).save(p, quality=90)
        paths.append(str(p))
    t = pd.DataFrame({"image_id": [str(i) for i in range(4)], "path": paths, "score": 5.0})
    tf = build_transform("ava", train=False, img_size=128)
    cache = ImageCache(tmp_path / "cache", size=160, quality=95)
    res = cache.build(paths, workers=2, progress=False)
    assert res == {"built": 4, "present": 0, "failed": {}}
    assert cache.build(paths, workers=2, progress=False)["present"] == 4
    plain, cached = IAADataset(t, transform=tf), IAADataset(t, transform=tf, cache=cache)
    for i in range(4):
        d = (plain[i]["image"] - cached[i]["image"]).abs()
        # documented tolerance: one extra resampling + JPEG q95 re-encode; normalised units (1/255 ~ 0.017)
        assert d.mean() < 0.05 and d.max() < 0.6, (i, d.mean().item(), d.max().item())
    # a source changes -> its cached copy is rebuilt, the others stay
    before = cache.path_for(paths[2])
    time.sleep(0.02)
    Image.new("RGB", (640, 480), (250, 10, 10)).save(paths[2], quality=90)
    assert cache.path_for(paths[2]) != before and not cache.path_for(paths[2]).exists()
    x = cached[2]["image"]
    assert abs(x[0].mean().item() - (250 / 255 - 0.485) / 0.229) < 0.05
    assert cache.path_for(paths[2]).exists()
    assert cache.build(paths, progress=False) == {"built": 0, "present": 4, "failed": {}}
    assert cache.prune(paths) == 1 and not before.exists()
    # another size is another cache
    assert ImageCache(tmp_path / "cache", size=96).path_for(paths[0]).parent.parent != cache.dir


def test_open_image_modes_and_exif(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    _smooth(60, 30, 0).save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert open_image(tmp_path / "r.jpg").size == (30, 60)
    for mode in ("L", "CMYK", "P", "RGBA", "I;16"):
        ext = "jpg" if mode in ("L", "CMYK") else "png"
        im = Image.new(mode, (20, 20)) if mode != "I;16" else Image.fromarray(np.full((20, 20), 4000, np.uint16))
        im.save(tmp_path / f"m.{ext}")
        out = open_image(tmp_path / f"m.{ext}")
        assert out.mode == "RGB" and out.size == (20, 20), mode
    with pytest.raises(BadImageError) as e:
        open_image(tmp_path / "r.jpg", min_side=40)
    assert e.value.reason == "tiny" and "eat-inventory" in str(e.value)


def test_benchmark_smoke(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_loading
    rows = bench_loading.main(["--smoke", "--dir", str(tmp_path), "--out", str(tmp_path / "r.csv")])
    assert [r["mode"] for r in rows] == ["plain", "draft", "cached"] and all(r["images_per_s"] > 0 for r in rows)
    assert len(pd.read_csv(tmp_path / "r.csv")) == 3
