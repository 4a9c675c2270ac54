"""Where `eat-score`'s time goes, per stage, for the eager and the onnxruntime backends (issue 18's scoring target).

In one process, on N synthetic 640x480 JPEGs and an untrained eat_tiny (as `bench_score.py`): importing the
package, loading the weights into a `Scorer` (the onnxruntime one finds its export cached), decoding + resizing
every photo, and the model's forward on the decoded batches, eager then onnxruntime, repeats interleaved, median.
The end-to-end ratio that `bench_score.py` measures is bounded by the share of the time outside the model.
A third model row runs the export as it was before it avoided ONNX's GridSample (the deformable blocks'
`grid_sample` exported as it is), to measure what that change gives.

    .venv/bin/python benchmarks/score_breakdown.py        # 200 photos, 3 repeats: about 3 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
t0 = time.perf_counter()
import torch  # noqa: E402
sys.path.insert(0, str(HERE.parent)); sys.path.insert(0, str(HERE))
from eat.score import Scorer, find_images  # noqa: E402
IMPORT_S = time.perf_counter() - t0
from bench_loading import make_photos  # noqa: E402
from eat.images import open_image  # noqa: E402
from eat.model import create_model  # noqa: E402
from eat.weights import save_weights  # noqa: E402
from eat import deform  # noqa: E402
from eat.export import OnnxRunner, export_onnx  # noqa: E402


def timed(f):
    t = time.perf_counter(); out = f(); return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200); ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eat_breakdown_"))
    make_photos(work / "photos", a.n, 640, 480)
    w = save_weights(create_model("eat_tiny").eval(), work / "w.safetensors")
    Scorer.from_weights(w, backend="onnxruntime", device="cpu")  # the export, once (cached beside the weights)
    real = deform.torch.onnx.is_in_onnx_export
    deform.torch.onnx.is_in_onnx_export = lambda: False  # the blocks take their eager path: GridSample in the graph
    try: gs = OnnxRunner(export_onnx(create_model("eat_tiny").eval(), work / "gridsample.onnx"))
    finally: deform.torch.onnx.is_in_onnx_export = real
    rows = {k: [] for k in ("load eager", "load onnxruntime", "decode + resize", "model eager", "model onnxruntime",
                            "model ort GridSample")}
    paths = find_images([work / "photos"])
    for _ in range(a.repeats):
        s_e, eager = timed(lambda: Scorer.from_weights(w, device="cpu", batch_size=a.batch))
        s_o, onnx = timed(lambda: Scorer.from_weights(w, backend="onnxruntime", device="cpu", batch_size=a.batch))
        s_d, x = timed(lambda: torch.stack([eager.transform(open_image(p)) for p in paths]))
        batches = list(x.split(a.batch))
        s_me, _ = timed(lambda: [eager.predict(b) for b in batches])
        s_mo, _ = timed(lambda: [onnx.predict(b) for b in batches])
        s_mg, _ = timed(lambda: [gs(b) for b in batches])
        for k, v in zip(rows, (s_e, s_o, s_d, s_me, s_mo, s_mg)): rows[k].append(v)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"{a.n} photos 640x480, eat_tiny, batch {a.batch}, {torch.get_num_threads()} threads; "
          f"load average {[round(x, 2) for x in os.getloadavg()]}")
    print(f"{'import eat (once)':22s} {IMPORT_S:7.2f} s")
    for k, v in med.items(): print(f"{k:22s} {v:7.2f} s   (repeats {', '.join(f'{x:.2f}' for x in rows[k])})")
    e = med["load eager"] + med["decode + resize"] + med["model eager"]
    o = med["load onnxruntime"] + med["decode + resize"] + med["model onnxruntime"]
    print(f"model alone: onnxruntime {med['model eager'] / med['model onnxruntime']:.2f}x eager; load + decode + model: "
          f"{e / o:.2f}x; bound if the model took no time at all: {e / (med['load onnxruntime'] + med['decode + resize']):.2f}x")
    print(f"onnxruntime, this export / the GridSample export: {med['model ort GridSample'] / med['model onnxruntime']:.2f}x")


if __name__ == "__main__":
    main()
