"""Where an `eat-score` process's time goes, stage by stage, for the eager, onnxruntime and openvino backends.

Each measurement is a new Python process that does what `eat-score` does, one stage after the other, and times
each: the interpreter's start, importing `eat.score`, loading the weights (`load_model`), hashing them and finding
the cached export (`cached_onnx` / `cached_openvino`: the export is made once before the timed rounds), building
the `Scorer` (ONNX Runtime's session, OpenVINO's compilation or loading of its cached compiled model), finding the
files, decoding + resizing every photo, the model on the decoded batches, writing the CSV, and the process's exit.
The stages run here one after the other; `eat-score` itself overlaps decoding with the model, so
`bench_score.py`'s end-to-end figure can be below their sum. Backends interleaved, median of the repeats; on N
synthetic 640x480 JPEGs and an untrained eat_tiny as `bench_score.py`.

`--tree DIR` times another checkout's `eat` package (e.g. `git archive COMMIT eat | tar -x -C DIR`) on the same
photos and weights: the breakdown before a change. Issue 18's in-process breakdown (commit 9a679b2) is in this
file's history.

    .venv/bin/python benchmarks/score_breakdown.py        # 200 photos, 3 repeats: about 4 minutes on 2 cores
"""
from __future__ import annotations

import time

T_FIRST_LINE = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
STAGES = ["python start", "import eat.score", "load_model", "hash + find export", "Scorer (session/compile)",
          "find files", "decode + resize", "model", "write CSV", "exit"]


def child(backend: str, weights: str, photos: str, batch: int, out: str):
    "The stages of one `eat-score`-like run; prints their seconds as JSON (the parent adds start and exit)."
    t = [T_FIRST_LINE]
    def lap(): t.append(time.time())
    import torch
    import eat.export as X
    import eat.score as S
    from eat.weights import load_model
    lap()
    model = load_model(weights); lap()
    kw = ({"onnx_path": X.cached_onnx(model, weights)} if backend == "onnxruntime" else
          {"openvino_path": X.cached_openvino(model, weights)} if backend == "openvino" else {})
    lap()
    scorer = S.Scorer(model, "cpu", batch_size=batch, backend=backend, **kw); lap()
    files = S.find_images([photos]); lap()
    items = [S._Files(files, scorer.transform)[i] for i in range(len(files))]; lap()
    rows = []
    with torch.no_grad():
        for k in range(0, len(items), batch):
            chunk = items[k:k + batch]
            s, d = scorer.predict(torch.stack([x for _, x, _ in chunk]))
            rows += scorer._rows(s, d, [str(files[i]) for i, _, _ in chunk])
    lap()
    S.pd.DataFrame(rows, columns=S.COLUMNS).to_csv(out, index=False); lap()
    print(json.dumps({"t": t}))
    if hasattr(S, "cli"):  # this tree's eat-score exits without the interpreter's teardown: so does its breakdown
        sys.stdout.flush(); sys.stderr.flush(); os._exit(0)


def run_child(tree: Path, backend: str, weights: Path, photos: Path, batch: int, threads: int, out: Path) -> dict:
    "Seconds per stage of one child process."
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(tree)}
    t0 = time.time()
    res = subprocess.run([sys.executable, __file__, "--child", backend, str(weights), str(photos), str(batch),
                          str(out)], capture_output=True, text=True, env=env)
    t_end = time.time()
    if res.returncode: raise RuntimeError(f"{backend} in {tree} failed:\n{res.stderr}")
    t = json.loads(res.stdout.strip().splitlines()[-1])["t"]
    return dict(zip(STAGES, [t[0] - t0, *(b - a for a, b in zip(t, t[1:])), t_end - t[-1]]))


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200); ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="threads per process (default: all usable cores)")
    ap.add_argument("--backends", nargs="+", default=["eager", "onnxruntime", "openvino"])
    ap.add_argument("--tree", default=str(HERE.parent), help="the checkout whose `eat` is timed (default: this one)")
    ap.add_argument("--dir", help="photos and weights (made if missing; default: a temporary folder)")
    ap.add_argument("--out", help="also write the table to this file")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent)); sys.path.insert(0, str(HERE))
    import torch
    from bench_loading import make_photos
    from eat.export import cached_onnx, cached_openvino
    from eat.files import git_commit
    from eat.model import create_model
    from eat.weights import save_weights
    threads = a.threads or len(os.sched_getaffinity(0))
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="eat_breakdown_"))
    photos, weights = work / "photos", work / "weights" / "eat_tiny.safetensors"
    if len(list(photos.glob("*.jpg"))) != a.n: make_photos(photos, a.n, 640, 480)
    if not weights.is_file():
        torch.manual_seed(0)
        save_weights(create_model("eat_tiny").eval(), weights)
    from eat.weights import load_model
    m = load_model(weights)
    if "onnxruntime" in a.backends: cached_onnx(m, weights)  # made once, outside the timed rounds
    if "openvino" in a.backends:
        from eat.export import OpenVinoRunner
        # converted and compiled once (full batches; the any-batch model for the last one): later processes load the cache
        OpenVinoRunner(cached_openvino(m, weights), threads=threads, batch_size=a.batch)(
            torch.zeros(a.n % a.batch or 1, 3, m.cfg.img_size, m.cfg.img_size))
    rows = {b: [] for b in a.backends}
    for _ in range(a.repeats):
        for b in a.backends:
            rows[b].append(run_child(Path(a.tree), b, weights, photos, a.batch, threads, work / "s.csv"))
    med = {b: {k: statistics.median(r[k] for r in rows[b]) for k in STAGES} for b in a.backends}
    tree = Path(a.tree).resolve()
    lines = [f"commit {git_commit()} ({'this checkout' if tree == HERE.parent else f'eat from {tree}'}), "
             f"{time.strftime('%Y-%m-%d')}; {a.n} photos 640x480, eat_tiny, batch {a.batch}, {threads} threads, "
             f"median of {a.repeats}; load average {[round(x, 2) for x in os.getloadavg()]}",
             f"{'stage (s)':26s}" + "".join(f"{b:>13s}" for b in a.backends)]
    lines += [f"{k:26s}" + "".join(f"{med[b][k]:13.2f}" for b in a.backends) for k in STAGES]
    lines.append(f"{'total':26s}" + "".join(f"{sum(med[b].values()):13.2f}" for b in a.backends))
    lines.append(f"{'outside the model':26s}" + "".join(f"{sum(med[b].values()) - med[b]['model']:13.2f}"
                                                        for b in a.backends))
    if "eager" in med:
        lines.append(f"{'model: eager / backend':26s}" + "".join(f"{med['eager']['model'] / med[b]['model']:13.2f}"
                                                                 for b in a.backends))
        lines.append(f"{'total: eager / backend':26s}" + "".join(
            f"{sum(med['eager'].values()) / sum(med[b].values()):13.2f}" for b in a.backends))
    text = "\n".join(lines)
    print(text)
    if a.out: Path(a.out).write_text(text + "\n")
    return text


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else: main()
