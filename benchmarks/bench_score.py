"""End-to-end speed of `eat-score`: the eager PyTorch backend vs `--backend onnxruntime` and `--backend openvino`.

Writes N synthetic photos (smooth-content JPEGs, quality 90, 640x480 by default: the size of a typical web photo),
saves an untrained eat_tiny (speed does not depend on the weights' values; these scores mean nothing), then runs
the `eat-score` console script on the folder as a user would: a new process each time, so every figure includes
start-up, loading the weights, hashing them, decoding, resizing and the model. The backends run in turn
(eager, onnxruntime, openvino, eager, ...) so that a change of machine load hits them alike; each figure is the
median of the repeats. The ONNX export and the OpenVINO conversion (with its first compilation, which OpenVINO
caches) are made once before the timed rounds (their one-time costs are reported on their own rows), as a user's
second and later runs find them cached beside the weights. Each backend's scores are compared with eager's
(largest absolute difference). Target: the fastest backend >= 1.5x eager end to end (issues 18 and 27).

History: issue 18 measured onnxruntime at 1.07x, then 1.12x eager (score_onnx.csv, clean f4461d2); issue 27 added
the openvino backend and decoding in a thread while the model runs (score_backends.csv).

Writes score_backends.csv and score_backends.json to benchmarks/results/ (or --out).

    .venv/bin/python benchmarks/bench_score.py            # 200 photos, 5 rounds: ~15 minutes on 2 busy cores
    .venv/bin/python benchmarks/bench_score.py --smoke    # eat_micro at 64 px, 6 photos, 1 round
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench import machine_info  # noqa: E402
from bench_loading import make_photos  # noqa: E402
from eat.export import OpenVinoRunner, cached_onnx, cached_openvino  # noqa: E402
from eat.model import create_model  # noqa: E402
from eat.weights import save_weights  # noqa: E402

RESULTS = HERE / "results"
TARGET = 1.5  # the fastest backend / eager, end to end
BACKENDS = ("eager", "onnxruntime", "openvino")


def eat_score(folder: Path, weights: Path, out: Path, backend: str, batch: int, threads: int) -> float:
    "Wall seconds of one `eat-score` process on `folder`; raises with its stderr when it fails."
    exe = Path(sys.executable).parent / "eat-score"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "eat.score"]),
           str(folder), "--weights", str(weights), "--out", str(out), "--backend", backend, "--batch-size", str(batch),
           "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(HERE.parent)}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    took = time.perf_counter() - t0
    if res.returncode != 0: raise RuntimeError(f"eat-score --backend {backend} failed ({res.returncode}):\n{res.stderr}")
    return took


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="eat_micro at 64 px, 6 photos, 1 round: checks that it runs")
    ap.add_argument("--n", type=int, default=0, help="photos (default 200, smoke 6)")
    ap.add_argument("--size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"), help="photo size")
    ap.add_argument("--variant", default="", help="model (default eat_tiny, smoke eat_micro)")
    ap.add_argument("--repeats", type=int, default=0, help="timed rounds (default 5, smoke 1)")
    ap.add_argument("--batch", type=int, default=32, help="eat-score --batch-size")
    ap.add_argument("--threads", type=int, default=0, help="threads per process (default: all usable cores)")
    ap.add_argument("--out", default=str(RESULTS), help=f"results folder (default {RESULTS})")
    ap.add_argument("--dir", help="where photos, weights and scores go (default: a temporary folder)")
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS, help="eager comes first")
    a = ap.parse_args(argv)
    n = a.n or (6 if a.smoke else 200)
    repeats = a.repeats or (1 if a.smoke else 5)
    variant = a.variant or ("eat_micro" if a.smoke else "eat_tiny")
    threads = a.threads or len(os.sched_getaffinity(0))
    root = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="eat_bench_score_"))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    info = machine_info(threads)
    info.update(smoke=a.smoke, photos=n, photo_size=a.size, variant=variant, repeats=repeats, batch=a.batch)
    make_photos(root / "photos", n, *a.size)
    torch.manual_seed(0)
    kw = dict(img_size=64, window_sizes=[4, 4, 4, 2]) if a.smoke else {}
    model = create_model(variant, **kw)
    weights = save_weights(model, root / "weights" / f"{variant}.safetensors")
    backends = ["eager", *(b for b in a.backends if b != "eager")]
    for old in weights.parent.glob(f"{weights.stem}.*"):  # a cold export and conversion, timed
        if old.suffix not in (".safetensors", ".json"): shutil.rmtree(old) if old.is_dir() else old.unlink()
    once = {}
    if "onnxruntime" in backends:
        t0 = time.perf_counter()
        onnx = cached_onnx(model, weights, verbose=False)
        once["onnx_export_once"] = (time.perf_counter() - t0, f"{onnx.stat().st_size / 2**20:.1f} MB")
    if "openvino" in backends:
        t0 = time.perf_counter()
        xml = cached_openvino(model, weights, verbose=False)
        # the first compilations (full batches; the any-batch model for the last one), which OpenVINO caches beside the
        # model for every later process
        OpenVinoRunner(xml, threads=threads, batch_size=a.batch)(torch.zeros(n % a.batch or 1, 3, *[model.cfg.img_size] * 2))
        size = xml.with_suffix(".bin").stat().st_size / 2**20
        once["openvino_convert_once"] = (time.perf_counter() - t0, f"{size:.1f} MB, with its first compilation")
    times = {b: [] for b in backends}
    for r in range(repeats):
        for backend in times:
            times[backend].append(eat_score(root / "photos", weights, root / f"{backend}.csv", backend, a.batch, threads))
            print(f"round {r + 1}/{repeats} {backend:<12} {times[backend][-1]:7.1f} s  load {os.getloadavg()[0]:.2f}",
                  flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    tables = {b: pd.read_csv(root / f"{b}.csv", keep_default_na=False) for b in times}
    diff = {b: float(np.abs(tables[b].score.astype(float).to_numpy() - tables["eager"].score.astype(float).to_numpy())
                     .max()) for b in times}
    for b in times:  # the same rows, none failed
        assert list(tables[b].path) == list(tables["eager"].path) and (tables[b].error == "").all(), b
    fastest = min(times, key=med.get)
    rows = [dict(name=b, photos=n, seconds=med[b], images_per_s=n / med[b], ratio=med["eager"] / med[b],
                 max_abs_score_diff=diff[b], target=TARGET if b == fastest and b != "eager" else "",
                 rounds=" ".join(f"{t:.2f}" for t in times[b])) for b in times]
    rows += [dict(name=k, photos="", seconds=s, images_per_s="", ratio="", max_abs_score_diff="", target="",
                  rounds=note) for k, (s, note) in once.items()]
    info.update(max_abs_score_diff={b: diff[b] for b in times if b != "eager"}, fastest=fastest,
                fastest_ratio=med["eager"] / med[fastest], load_avg_end=[round(v, 2) for v in os.getloadavg()],
                rounds_interleaved=list(times))
    with open(out / "score_backends.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows: w.writerow({k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in row.items()})
    (out / "score_backends.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"eat-score end to end, {n} photos {a.size[0]}x{a.size[1]}, {variant}, {threads} threads: "
          + ", ".join(f"{b} {n / med[b]:.2f} img/s = {med['eager'] / med[b]:.2f}x (max score diff {diff[b]:.1e})"
                      for b in times)
          + f"; fastest {fastest} (target {TARGET}x); once: "
          + ", ".join(f"{k} {s:.1f} s" for k, (s, _) in once.items())
          + f"; load {info['load_avg_start']} -> {info['load_avg_end']}")
    if not a.dir: shutil.rmtree(root, ignore_errors=True)
    return {"rows": rows, "info": info}


if __name__ == "__main__":
    main()
