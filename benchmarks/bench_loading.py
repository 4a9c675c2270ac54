"""Loading speed of AVA-sized photos: plain decode vs JPEG draft mode vs the pre-resized cache (eat.images.ImageCache).

Writes synthetic 1024x768 JPEGs (smooth content, quality 90, like camera photos), then times a full pass of
`eat.datasets.IAADataset` with the "ava" preset at 224 px in three modes and prints images/s and the ratio to plain
loading. Results are appended to benchmarks/results/loading.csv. A benchmark, not a test: numbers depend on the
machine and its load.

    .venv/bin/python benchmarks/bench_loading.py            # 200 images
    .venv/bin/python benchmarks/bench_loading.py --smoke    # 8 images, seconds

benchmarks/bench.py runs the same comparison (interleaved, as ratios) next to the model benchmarks.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eat.datasets import IAADataset, make_loader  # noqa: E402
from eat.images import ImageCache, build_transform  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "loading.csv"


def make_photos(folder: Path, n: int, width: int = 1024, height: int = 768, seed: int = 0) -> pd.DataFrame:
    "Write n smooth-content JPEGs of width x height; return a table for IAADataset."
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        p = folder / f"{i}.jpg"
        if not p.exists():
            small = rng.integers(0, 256, (height // 32, width // 32, 3), np.uint8)
            img = Image.fromarray(small).resize((width, height), Image.BICUBIC)
            noise = rng.normal(0, 6, (height, width, 3))
            Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8)).save(p, quality=90)
        rows.append({"image_id": str(i), "path": str(p), "score": 5.0})
    return pd.DataFrame(rows)


def time_pass(ds, workers: int, batch_size: int = 16) -> float:
    "Seconds for one pass over ds (through a DataLoader when workers > 0)."
    t0 = time.perf_counter()
    if workers == 0:
        for i in range(len(ds)):
            assert "image" in ds[i], ds[i]
    else:
        for _ in make_loader(ds, batch_size=batch_size, num_workers=workers):
            pass
    return time.perf_counter() - t0


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="number of photos (default 200)")
    ap.add_argument("--img-size", type=int, default=224, help="network input size (default 224)")
    ap.add_argument("--cache-size", type=int, default=0,
                    help="shorter side of cached copies (default: the transform's load size, 224 for --img-size 224)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers; 0 = in-process loop (default)")
    ap.add_argument("--dir", help="where to write photos and the cache (default: a temporary folder)")
    ap.add_argument("--out", default=str(RESULTS), help=f"results CSV (default {RESULTS})")
    ap.add_argument("--smoke", action="store_true", help="8 photos: checks that the benchmark runs")
    a = ap.parse_args(argv)
    # DataLoader workers run torch with one thread each; do the same in-process, or on a busy machine OpenMP
    # spin-waiting in ToTensor/Normalize (tens of ms per image) would swamp the decoding this benchmark measures.
    torch.set_num_threads(1)
    n = 8 if a.smoke else a.n
    root = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="eat_bench_"))
    table = make_photos(root / "photos", n)
    tf = build_transform("ava", train=False, img_size=a.img_size)
    cache = ImageCache(root / "cache", size=a.cache_size or tf.load_size)
    t0 = time.perf_counter()
    built = cache.build(table["path"], workers=os.cpu_count(), progress=False)
    build_s = time.perf_counter() - t0
    assert not built["failed"], built["failed"]
    modes = {"plain": IAADataset(table, transform=tf, draft=False),
             "draft": IAADataset(table, transform=tf, draft=True),
             "cached": IAADataset(table, transform=tf, cache=cache)}
    rows = []
    for mode, ds in modes.items():
        ds[0]  # warm up (imports, file cache)
        s = time_pass(ds, a.workers)
        rows.append({"mode": mode, "n_images": n, "source": "1024x768 jpeg q90", "input_size": a.img_size,
                     "cache_size": cache.size if mode == "cached" else "", "workers": a.workers,
                     "seconds": round(s, 3), "images_per_s": round(n / s, 1),
                     "cache_build_s": round(build_s, 2) if mode == "cached" else "",
                     "cache_n_built": built["built"] if mode == "cached" else "", "cpus": os.cpu_count(),
                     "load_avg_1min": round(os.getloadavg()[0], 2),
                     "smoke": a.smoke})
    plain = rows[0]["images_per_s"]
    for r in rows:
        r["ratio_vs_plain"] = round(r["images_per_s"] / plain, 2)
        print(f"{r['mode']:>7}: {r['images_per_s']:8.1f} images/s  ({r['ratio_vs_plain']:.2f}x plain)")
    print(f"cache build: {build_s:.2f}s, {built['built']} built, {built['present']} already present "
          f"({os.cpu_count()} threads)")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)
    print(f"results appended to {out}")
    return rows


if __name__ == "__main__":
    main()
