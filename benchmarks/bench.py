"""Speed of EAT against a strong reference, measured in one process and reported as ratios.

Every comparison runs in this one process, with the same torch threads and the same input, the contenders
interleaved (A B C, A B C, ...) so that a change of machine load hits them alike; each figure is the median of the
repeats. Sections:

1. model: inference and training-step throughput and peak tensor memory of eat_tiny vs timm's
   swin_tiny_patch4_window7_224 at 224 px (targets on CPU: >= 1.0x inference, >= 0.9x training step);
2. overhead: eat_tiny vs dat_tiny, its plain-DAT twin (target: at most 5% slower);
3. loading: plain JPEG decode vs draft mode vs the pre-resized cache (at the transform's load size, and at
   ImageCache's default 256) on synthetic 1024x768 JPEGs (target: cache >= 5x plain), with the photo writer and
   the pass timer of benchmarks/bench_loading.py;
4. scaling: seconds per training epoch (cached loading + train steps) vs number of images, and throughput vs
   batch size;
5. roofline: achieved GFLOP/s of the model forward vs dense fp32 matmul GFLOP/s measured in the same run;
6. side by side (side_by_side.csv): the original authors' EAT-T code (--original PATH, a checkout outside this
   project, see benchmarks/original.py) vs eat_tiny eager and torch.compile'd vs Swin-T, inference and training
   step, as ratios to the original and to Swin-T (targets: compiled eat_tiny >= 1.2x the original's eager
   inference; eager eat_tiny >= 1.0x Swin-T);
7. memory at batch 32 (memory_b32.csv): peak tensor memory of a training step of eat_tiny vs Swin-T, with and
   without gradient (activation) checkpointing.

On a GPU the model sections also time bf16 autocast and torch.compile against eager.
Writes bench.csv (one row per figure of sections 1-5), bench.png, machine.json and (full runs) profile.txt, the top
operators of eat and swin, to benchmarks/results/ (or --out); sections 6 and 7 write their own CSV, each with a JSON
of the machine, commit and load beside it, so that they can be rerun alone (--only side memory32).

    .venv/bin/python benchmarks/bench.py            # full run, a few minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench.py --smoke    # micro models, tiny inputs: checks that everything runs
    .venv/bin/python benchmarks/bench.py --only side memory32 --original ../orig_eat   # sections 6 and 7 alone
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import timm  # noqa: E402

from bench_loading import make_photos, time_pass  # noqa: E402
from original import load_original  # noqa: E402
from eat.datasets import IAADataset, make_loader  # noqa: E402
from eat.images import ImageCache, build_transform  # noqa: E402
from eat.model import create_model  # noqa: E402
from eat.files import git_commit  # noqa: E402

RESULTS = HERE / "results"
SWIN = "swin_tiny_patch4_window7_224"
TARGETS = {"infer": 1.0, "train": 0.9}  # EAT-T / Swin-T throughput on CPU (issue 9)


# ----------------------------------------------------------------------------------------------------------- helpers
def machine_info(threads: int) -> dict:
    "What the numbers depend on: CPU, cores, library versions, threads, load."
    cpu = platform.processor() or ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu_model": cpu, "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "torch_threads": threads, "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "git_commit": git_commit(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "load_avg_start": [round(v, 2) for v in os.getloadavg()]}


def sync(device: str):
    if device == "cuda": torch.cuda.synchronize()


def interleaved(fns: dict, repeats: int, device: str = "cpu", warmup: int = 1) -> dict:
    "Median seconds of each callable, the callables run in turn `repeats` times after `warmup` untimed rounds."
    for _ in range(warmup):
        for f in fns.values(): f(); sync(device)
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            sync(device); t0 = time.perf_counter(); f(); sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_memory_mb(fn, device: str) -> float:
    "Peak bytes of tensors allocated while `fn` runs (CUDA allocator on GPU, the profiler's allocation record on CPU)."
    if device == "cuda":
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
        fn(); torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p: fn()
    cur = peak = 0
    for e in sorted(p.events(), key=lambda e: e.time_range.start):
        cur += e.self_cpu_memory_usage; peak = max(peak, cur)
    return peak / 2**20


def _logits(out) -> torch.Tensor: return out.logits if hasattr(out, "logits") else out


def build_models(smoke: bool) -> dict:
    "eat, its plain-DAT twin and timm's Swin of the same size class (micro-sized ones at 64 px in smoke mode)."
    torch.manual_seed(0)
    if smoke:
        small = dict(img_size=64, window_sizes=[4, 4, 4, 2])
        swin = timm.create_model(SWIN, num_classes=10, img_size=64, window_size=4, embed_dim=32, depths=(1, 1, 2, 1),
                                 num_heads=(1, 2, 4, 8))
        return {"eat": create_model("eat_micro", **small), "dat": create_model("dat_micro", **small), "swin": swin}
    return {"eat": create_model("eat_tiny"), "dat": create_model("dat_tiny"), "swin": timm.create_model(SWIN, num_classes=10)}


def step_fns(model: nn.Module, x: torch.Tensor, autocast: torch.dtype | None = None) -> tuple:
    "An inference call and a training step (forward, loss, backward, AdamW step) of `model` on `x`."
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    dev = x.device.type
    def ctx(): return torch.autocast(dev, dtype=autocast) if autocast else torch.autocast(dev, enabled=False)
    def infer():
        model.eval()
        with torch.inference_mode(), ctx(): _logits(model(x))
    def train():
        model.train()
        with ctx(): loss = _logits(model(x)).float().square().mean()
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return infer, train


def forward_gflops(model: nn.Module, x: torch.Tensor) -> float:
    "GFLOPs of one forward pass (matmuls and convolutions, as torch's FlopCounterMode counts them)."
    from torch.utils.flop_counter import FlopCounterMode
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as fc: model(x)
    return fc.get_total_flops() / 1e9


# ---------------------------------------------------------------------------------------------------------- sections
def bench_models(rows: list, models: dict, batch: int, img: int, repeats: int, device: str):
    "Sections 1, 2 and 5: throughput, ratios, peak memory, achieved vs matmul GFLOP/s."
    x = torch.randn(batch, 3, img, img, device=device)
    fns = {k: step_fns(m.to(device), x) for k, m in models.items()}
    for mode, j in (("infer", 0), ("train", 1)):
        med = interleaved({k: f[j] for k, f in fns.items()}, repeats, device)
        for k, s in med.items():
            rows.append(dict(section="model", name=k, mode=mode, batch=batch, metric="images_per_s",
                             value=batch / s, ref="swin", ratio=med["swin"] / s,
                             target=TARGETS[mode] if k == "eat" and device == "cpu" else ""))
        rows.append(dict(section="overhead", name="eat_vs_dat", mode=mode, batch=batch, metric="slowdown_pct",
                         value=100 * (med["eat"] / med["dat"] - 1), ref="dat", ratio=med["dat"] / med["eat"],
                         target=0.95))
    for k, f in fns.items():
        for mode, j in (("infer", 0), ("train", 1)):
            mb = peak_memory_mb(f[j], device)
            rows.append(dict(section="memory", name=k, mode=mode, batch=batch, metric="peak_mb", value=mb, ref="swin"))
    swin_mb = {r["mode"]: r["value"] for r in rows if r["section"] == "memory" and r["name"] == "swin"}
    for r in rows:
        if r["section"] == "memory": r["ratio"] = r["value"] / swin_mb[r["mode"]]
    eat_mb = next(r["value"] for r in rows if r["section"] == "memory" and r["name"] == "eat" and r["mode"] == "train")
    models["eat"].set_grad_checkpointing(True)  # activation checkpointing: the memory it saves in a training step
    mb = peak_memory_mb(fns["eat"][1], device)
    models["eat"].set_grad_checkpointing(False)
    rows.append(dict(section="memory", name="eat_grad_ckpt", mode="train", batch=batch, metric="peak_mb", value=mb,
                     ref="eat", ratio=mb / eat_mb))
    # roofline: the forward's GFLOP/s next to a dense matmul's, timed in the same interleaved loop
    mm_n = 1024 if device == "cpu" else 8192
    a, b = torch.randn(mm_n, mm_n, device=device), torch.randn(mm_n, mm_n, device=device)
    timed = {"matmul": lambda: torch.mm(a, b), **{k: f[0] for k, f in fns.items()}}
    med = interleaved(timed, repeats, device)
    peak = 2 * mm_n ** 3 / med["matmul"] / 1e9
    rows.append(dict(section="roofline", name="matmul", mode="infer", batch=mm_n, metric="gflop_per_s", value=peak,
                     ref="matmul", ratio=1.0))
    for k, m in models.items():
        gf = forward_gflops(m, x) / med[k]
        rows.append(dict(section="roofline", name=k, mode="infer", batch=batch, metric="gflop_per_s", value=gf,
                         ref="matmul", ratio=gf / peak))


def profile_top_ops(models: dict, batch: int, img: int, device: str, path: Path, rows: int = 15):
    "Where the time goes: the top operators by self time of one inference call and one training step per model."
    from torch.profiler import ProfilerActivity, profile
    x = torch.randn(batch, 3, img, img, device=device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    with open(path, "w") as f:
        for k in ("eat", "swin"):
            for mode, fn in zip(("infer", "train"), step_fns(models[k], x)):
                fn()
                with profile(activities=acts) as p: fn()
                f.write(f"== {k} {mode}, batch {batch}, {img} px, {torch.get_num_threads()} threads\n")
                f.write(p.key_averages().table(sort_by=key, row_limit=rows) + "\n")


def bench_gpu(rows: list, models: dict, batch: int, img: int, repeats: int):
    "GPU only: bf16 autocast and torch.compile against eager fp32, for eat and swin."
    x = torch.randn(batch, 3, img, img, device="cuda")
    for k in ("eat", "swin"):
        m = models[k].cuda()
        variants = {"eager_fp32": step_fns(m, x), "eager_bf16": step_fns(m, x, torch.bfloat16)}
        compiled = step_fns(torch.compile(m), x, torch.bfloat16)
        try:  # compilation happens at the first call of each mode
            for f in compiled: f()
            variants["compiled_bf16"] = compiled
        except Exception as e:  # noqa: BLE001 - a failed compile is a result to report, not a crash
            print(f"torch.compile of {k} failed: {type(e).__name__}: {str(e)[:300]}")
        for mode, j in (("infer", 0), ("train", 1)):
            med = interleaved({v: f[j] for v, f in variants.items()}, repeats, "cuda", warmup=2)
            for v, s in med.items():
                rows.append(dict(section="gpu", name=f"{k}_{v}", mode=mode, batch=batch, metric="images_per_s",
                                 value=batch / s, ref=f"{k}_eager_fp32", ratio=med["eager_fp32"] / s))


def bench_loading(rows: list, root: Path, n: int, repeats: int, img: int):
    "Section 3: images/s of a full in-process pass, plain vs draft vs cached, interleaved."
    table = make_photos(root / "photos", n)
    tf = build_transform("ava", train=False, img_size=img)
    cache = ImageCache(root / "cache", size=tf.load_size)  # the size the transform needs (224 for AVA's preset)
    cache256 = ImageCache(root / "cache", size=256)  # ImageCache's default, which also serves the crop presets
    for c in (cache, cache256):
        built = c.build(table["path"], progress=False)
        assert not built["failed"], built["failed"]
    sets = {"plain": IAADataset(table, transform=tf, draft=False),
            "draft": IAADataset(table, transform=tf, draft=True),
            "cached": IAADataset(table, transform=tf, cache=cache),
            "cached_256": IAADataset(table, transform=tf, cache=cache256)}
    med = interleaved({k: (lambda ds=ds: time_pass(ds, 0)) for k, ds in sets.items()}, repeats)
    for k, s in med.items():
        rows.append(dict(section="loading", name=k, mode="decode+transform", batch=n, metric="images_per_s",
                         value=n / s, ref="plain", ratio=med["plain"] / s, target=5.0 if k == "cached" else ""))
    return table, cache, tf


def bench_scaling(rows: list, table, cache, tf, model: nn.Module, big: nn.Module, ns: list, batches: list,
                  img: int, batch: int, repeats: int):
    "Section 4: a training epoch of `model` (cached loading + steps) vs image count; `big`'s images/s vs batch size."
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    def epoch(n):
        model.train()
        ds = IAADataset(table.iloc[:n], transform=tf, cache=cache)
        for b in make_loader(ds, batch_size=batch, num_workers=0):
            _logits(model(b["image"])).float().square().mean().backward(); opt.step(); opt.zero_grad()
    med = interleaved({n: (lambda n=n: epoch(n)) for n in ns}, repeats)
    for n, s in med.items():
        rows.append(dict(section="scaling_epoch", name="eat", mode="train", batch=n, metric="seconds_per_epoch",
                         value=s, ref=f"n={ns[0]}", ratio=(s / med[ns[0]]) / (n / ns[0])))
    x = torch.randn(max(batches), 3, img, img)
    def infer(bs):
        big.eval()
        with torch.inference_mode(): big(x[:bs])
    med = interleaved({bs: (lambda bs=bs: infer(bs)) for bs in batches}, repeats)
    for bs, s in med.items():
        rows.append(dict(section="scaling_batch", name="eat_big", mode="infer", batch=bs, metric="images_per_s",
                         value=bs / s, ref=f"batch={batches[0]}", ratio=(bs / s) / (batches[0] / med[batches[0]])))


def compile_fns(model: nn.Module, x: torch.Tensor, backend: str) -> tuple[tuple, float]:
    "`step_fns` of `torch.compile(model)`, each called once (that is when it compiles); returns them and the seconds."
    fns = step_fns(torch.compile(model, backend=backend), x)
    t0 = time.perf_counter()
    for f in fns: f()
    return fns, time.perf_counter() - t0


def bench_side_by_side(models: dict, batch: int, img: int, repeats: int, device: str, compile_backend: str | None
                       ) -> list:
    "Section 6: original (when given) / eat eager / eat compiled / swin, inference and training, interleaved."
    x = torch.randn(batch, 3, img, img, device=device)
    fns = {k: step_fns(m.to(device), x) for k, m in models.items()}
    compile_s = {}
    if compile_backend:
        try:
            fns["eat_compiled"], compile_s["eat_compiled"] = compile_fns(models["eat"], x, compile_backend)
        except Exception as e:  # noqa: BLE001 - a failed compile is a result to report, not a crash
            print(f"torch.compile of eat failed: {type(e).__name__}: {str(e)[:500]}")
            compile_s["eat_compiled"] = f"failed: {type(e).__name__}"
    rows = []
    for mode, j in (("infer", 0), ("train", 1)):
        med = interleaved({k: f[j] for k, f in fns.items()}, repeats, device)
        for k, s in med.items():
            target = ""
            if k == "eat_compiled" and mode == "infer" and "original" in med: target = "1.2x original"
            if k == "eat": target = "1.0x swin"
            rows.append(dict(section="side_by_side", name=k, mode=mode, batch=batch, images_per_s=batch / s,
                             vs_original=med["original"] / s if "original" in med else "", vs_swin=med["swin"] / s,
                             target=target, compile_s=compile_s.get(k, "")))
    return rows


def bench_memory(models: dict, batch: int, img: int, device: str) -> list:
    "Section 7: peak tensor memory of one training step (after a warm-up step), with and without checkpointing."
    x = torch.randn(batch, 3, img, img, device=device)
    rows = []
    for k, m in models.items():
        m.to(device)
        params_mb = sum(p.numel() * p.element_size() for p in m.parameters()) / 2**20
        for ckpt in (False, True):
            m.set_grad_checkpointing(ckpt)
            train = step_fns(m, x)[1]
            train()  # the optimiser's state exists from here on, as in every later step
            rows.append(dict(section="memory_b32", name=k, grad_checkpointing=ckpt, batch=batch, img=img,
                             peak_mb=peak_memory_mb(train, device), params_mb=params_mb))
        m.set_grad_checkpointing(False)
    for r in rows:
        ref = next(q["peak_mb"] for q in rows if q["name"] == "swin" and q["grad_checkpointing"] == r["grad_checkpointing"])
        own = next(q["peak_mb"] for q in rows if q["name"] == r["name"] and not q["grad_checkpointing"])
        r["vs_swin"], r["vs_no_ckpt"] = r["peak_mb"] / ref, r["peak_mb"] / own
    return rows


def write_table(rows: list, path: Path, info: dict):
    "A section's own CSV, and its machine / commit / load JSON beside it."
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows: w.writerow({k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in r.items()})
    path.with_suffix(".json").write_text(json.dumps({**info, "load_avg_end": [round(v, 2) for v in os.getloadavg()]},
                                                    indent=1) + "\n")


# ------------------------------------------------------------------------------------------------------------ output
def plot(rows: list, path: Path):
    "Four panels: ratios vs reference with targets, loading, epoch time vs images, throughput vs batch."
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 4, figsize=(18, 4))
    rat = [r for r in rows if r["section"] in ("model", "overhead", "roofline") and r["name"] in ("eat", "eat_vs_dat")]
    labels = [f"{r['section']}\n{r['mode']}" for r in rat]
    ax[0].bar(labels, [r["ratio"] for r in rat], color="tab:blue")
    for i, r in enumerate(rat):
        if r.get("target", "") != "": ax[0].plot([i - .4, i + .4], [r["target"]] * 2, "r--")
    ax[0].set_title("EAT-T: ratio to its reference (red: target)"); ax[0].tick_params(axis="x", labelsize=7)
    ld = [r for r in rows if r["section"] == "loading"]
    ax[1].bar([r["name"] for r in ld], [r["value"] for r in ld], color="tab:green")
    ax[1].set_title("loading, images/s (in-process)")
    ep = [r for r in rows if r["section"] == "scaling_epoch"]
    if ep:
        xs, ys = [r["batch"] for r in ep], [r["value"] for r in ep]
        ax[2].plot(xs, ys, "o-", label="measured")
        ax[2].plot([0, xs[-1]], [0, ys[-1]], "k:", label="linear through last point")
        ax[2].set_xlabel("images per epoch"); ax[2].set_ylabel("seconds"); ax[2].legend()
    ax[2].set_title("training epoch time vs images")
    bt = [r for r in rows if r["section"] == "scaling_batch"]
    if bt:
        ax[3].plot([r["batch"] for r in bt], [r["value"] for r in bt], "o-")
        ax[3].set_xscale("log", base=2); ax[3].set_xlabel("batch size")
    ax[3].set_title("inference images/s vs batch size")
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def write_csv(rows: list, path: Path):
    cols = ["section", "name", "mode", "batch", "metric", "value", "ref", "ratio", "target"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: (float(f"{r[c]:.6g}") if isinstance(r.get(c), float) else r.get(c, "")) for c in cols})


def summary(rows: list) -> str:
    "The ratios, one line each."
    lines = []
    for r in rows:
        if r["section"] in ("model", "memory") and not r["name"].startswith("eat"): continue
        if r["section"] == "roofline" and r["name"] == "matmul":
            lines.append(f"roofline  matmul          {r['value']:8.1f} GFLOP/s (dense fp32 peak of this run)"); continue
        what = {"model": "throughput / swin", "memory": f"peak memory / {r['ref']}", "overhead": "throughput dat / eat",
                "loading": "images/s / plain", "roofline": "GFLOP/s / matmul", "gpu": "throughput / eager fp32",
                "scaling_epoch": "(s per image) / smallest n", "scaling_batch": "images/s / batch 1"}[r["section"]]
        tgt = f"  target {r['target']}" if r.get("target") not in ("", None) else ""
        lines.append(f"{r['section']:<14}{r['name']:<18}{r['mode']:<17}{str(r['batch']):>5}  {r['ratio']:6.2f}x  "
                     f"{what}{tgt}")
    return "\n".join(lines)


def summary_side(rows: list) -> str:
    "The side-by-side ratios, one line each."
    return "\n".join(f"side_by_side  {r['name']:<14}{r['mode']:<7}{r['images_per_s']:8.2f} img/s  "
                     + (f"{r['vs_original']:5.2f}x original  " if r["vs_original"] != "" else "")
                     + f"{r['vs_swin']:5.2f}x swin" + (f"  target {r['target']}" if r["target"] else "")
                     + (f"  (compiled in {r['compile_s']:.0f} s)" if isinstance(r["compile_s"], float) else "")
                     for r in rows)


def summary_memory(rows: list) -> str:
    "The batch-32 memory table, one line each."
    return "\n".join(f"memory_b32    {r['name']:<6} checkpointing={str(r['grad_checkpointing']):<6}{r['peak_mb']:9.0f} MB  "
                     f"{r['vs_swin']:5.2f}x swin  {r['vs_no_ckpt']:5.2f}x without checkpointing" for r in rows)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="micro models, small inputs, one repeat: under a minute")
    ap.add_argument("--out", default=str(RESULTS), help=f"results folder (default {RESULTS})")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all usable cores)")
    ap.add_argument("--repeats", type=int, default=0, help="timed repeats per figure (default 5, smoke 1)")
    ap.add_argument("--batch", type=int, default=0, help="batch size of the model comparison (default 8, smoke 2)")
    ap.add_argument("--dir", help="where the synthetic photos and cache go (default: a temporary folder)")
    sections = ["model", "profile", "loading", "scaling", "gpu", "side", "compile", "memory32"]
    ap.add_argument("--skip", nargs="*", default=[], choices=sections, help="sections to leave out")
    ap.add_argument("--only", nargs="*", default=None, choices=sections, help="run only these sections")
    ap.add_argument("--original", help="checkout of the original EAT repository (outside this project): adds its "
                                       "EAT-T to the side-by-side section")
    ap.add_argument("--compile-backend", default=None,
                    help="torch.compile backend of the side-by-side section (default inductor; smoke: eager)")
    a = ap.parse_args(argv)
    if a.only is not None:  # compile is part of the side-by-side section: --skip compile leaves it out
        a.skip = [s for s in sections if s not in a.only and s != "compile"] + [s for s in a.skip if s == "compile"]
    threads = a.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    repeats = a.repeats or (1 if a.smoke else 5)
    batch = a.batch or (2 if a.smoke else 8)
    img = 64 if a.smoke else 224  # network input of the model sections (loading always decodes for 224 px)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    info = machine_info(threads); info.update(smoke=a.smoke, repeats=repeats, batch=batch, device=device)
    t_start = time.perf_counter()
    rows: list = []
    models = build_models(a.smoke)
    if "model" not in a.skip:
        bench_models(rows, models, batch, img, repeats, device)
        if device == "cuda" and "gpu" not in a.skip: bench_gpu(rows, models, 4 * batch, img, repeats)
        if not a.smoke and "profile" not in a.skip: profile_top_ops(models, batch, img, device, out / "profile.txt")
        info["seconds_model"] = round(time.perf_counter() - t_start, 1)
        models = {k: m.cpu() for k, m in models.items()}
    if "side" not in a.skip:
        t0 = time.perf_counter()
        small = dict(img_size=64, window_sizes=[4, 4, 4, 2]) if a.smoke else {}  # as build_models' smoke models
        side = {**({"original": load_original(a.original, **small)} if a.original else {}), "eat": models["eat"],
                "swin": models["swin"]}
        backend = None if "compile" in a.skip else (a.compile_backend or ("eager" if a.smoke else "inductor"))
        rows_side = bench_side_by_side(side, batch, img, repeats, device, backend)
        models = {k: m.cpu() for k, m in models.items()}
        write_table(rows_side, out / "side_by_side.csv", {**info, "compile_backend": backend, "original": a.original,
                                                          "seconds": round(time.perf_counter() - t0, 1)})
        print(summary_side(rows_side))
    if "memory32" not in a.skip:
        t0 = time.perf_counter()
        rows_mem = bench_memory({"eat": models["eat"], "swin": models["swin"]}, 4 if a.smoke else 32, img, device)
        write_table(rows_mem, out / "memory_b32.csv", {**info, "seconds": round(time.perf_counter() - t0, 1)})
        print(summary_memory(rows_mem))
    if all(s in a.skip for s in ("model", "loading", "scaling")):
        print(f"{round(time.perf_counter() - t_start, 1)}s, {threads} threads, load average {info['load_avg_start']} -> "
              f"{[round(v, 2) for v in os.getloadavg()]}; results in {out}")
        return {"rows": rows, "info": info}
    root = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="eat_bench_"))
    if "loading" not in a.skip or "scaling" not in a.skip:
        # decoding runs one thread a worker, as in DataLoader workers; the models get all threads back after
        torch.set_num_threads(1)
        n_photos = 8 if a.smoke else 200
        table, cache, tf = bench_loading(rows, root, n_photos, repeats if a.smoke else 3, 224)
        torch.set_num_threads(threads)
        info["seconds_loading"] = round(time.perf_counter() - t_start - info.get("seconds_model", 0), 1)
        if "scaling" not in a.skip:
            # the epoch: images from the cache through a small EAT (eat_micro at 224 px; the smoke model at 64 px)
            micro = models["eat"] if a.smoke else create_model("eat_micro")
            tf = build_transform("ava", train=True, img_size=img)
            ns = [2, 4, 8] if a.smoke else [16, 32, 64]
            batches = [1, 2] if a.smoke else [1, 2, 4, 8, 16]
            bench_scaling(rows, table, cache, tf, micro, models["eat"], ns, batches, img, 2 if a.smoke else 8,
                          repeats if a.smoke else 3)
    info["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    info["seconds"] = round(time.perf_counter() - t_start, 1)
    write_csv(rows, out / "bench.csv")
    plot(rows, out / "bench.png")
    (out / "machine.json").write_text(json.dumps(info, indent=1) + "\n")
    print(summary(rows))
    print(f"{info['seconds']}s, {threads} threads, load average {info['load_avg_start']} -> {info['load_avg_end']}; "
          f"results in {out}")
    return {"rows": rows, "info": info}


if __name__ == "__main__":
    main()
