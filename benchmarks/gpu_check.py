"""GPU check: bf16 autocast throughput of eat_tiny vs Swin-T (and the original EAT-T code), eager and compiled, and
a 200-step training smoke at 224 px. One short run on one GPU; refuses at once, clearly, without one.

Sections, each written to benchmarks/results/gpu/ (or --out) as soon as it is done, so a run cut short keeps what
it measured:
1. throughput.csv: inference and training-step images/s at 224 px of eat_tiny, timm's swin_tiny_patch4_window7_224
   and (with --original PATH) the original authors' EAT-T code, fp32 eager, bf16 autocast eager and bf16 autocast
   torch.compile'd (inductor), the models interleaved (one call each in turn, median of --repeats), as ratios to
   Swin-T and to the original in the same variant; compile seconds per model;
2. smoke.csv: eat_tiny trained 200 steps (AdamW, bf16 autocast, cross-entropy) on synthetic scenes rendered at
   224 px (eat.synth.SyntheticScenes, object classes), loss every 10 steps, images/s and peak GPU memory;
machine.json: GPU, driver, CUDA, torch, timm, commit, load average, seconds per section, what was skipped.

    benchmarks/gpu_check.sh [--original /path/to/orig_eat]      # under 8 minutes on an H200
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
NO_GPU = 3  # exit status without a CUDA GPU


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results" / "gpu"), help="results folder")
    ap.add_argument("--original", help="checkout of the original EAT repository (outside this project)")
    ap.add_argument("--infer-batch", type=int, default=128)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds; each figure is their median")
    ap.add_argument("--iters", type=int, default=10, help="calls per timed round")
    ap.add_argument("--steps", type=int, default=200, help="training-smoke steps")
    ap.add_argument("--smoke-batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0, help="data workers of the smoke (default: usable cores - 2)")
    ap.add_argument("--budget-s", type=float, default=420,
                    help="compilations that would start after this many seconds are skipped (and recorded so)")
    ap.add_argument("--no-compile", action="store_true", help="eager only")
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="check the script's code paths on the CPU: micro models at 64 px, a few steps, compile with "
                         "the 'eager' backend (its numbers mean nothing)")
    a = ap.parse_args(argv)
    dry = a.cpu_dry_run
    if dry:
        a.infer_batch, a.train_batch, a.repeats, a.iters, a.smoke_batch = 2, 2, 1, 1, 2
        a.steps = min(a.steps, 12)
    if not torch.cuda.is_available() and not dry:
        print("gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False; "
              f"torch {torch.__version__}, CUDA build {torch.version.cuda}). Run it on a machine with an NVIDIA GPU "
              "and a CUDA build of torch; nothing was measured or written.", file=sys.stderr)
        return NO_GPU
    t_start = time.perf_counter()
    sys.path.insert(0, str(HERE.parent)); sys.path.insert(0, str(HERE))
    import timm
    from bench import SWIN, _logits, machine_info, step_fns
    from eat.model import create_model
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    info = machine_info(torch.get_num_threads())
    info.update(args=vars(a), seconds={}, skipped=[], cpu_dry_run=dry)
    if not dry:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", cuda_runtime=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    try:
        import subprocess
        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    def save_info():
        info["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
        info["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
        (out / "machine.json").write_text(json.dumps(info, indent=1) + "\n")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    dev = "cpu" if dry else "cuda"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    img = 64 if dry else 224
    small = dict(img_size=64, window_sizes=[4, 4, 4, 2]) if dry else {}
    swin_small = dict(img_size=64, window_size=4, embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8))

    # ---- 1. throughput
    torch.manual_seed(0)
    models = {"eat": create_model("eat_micro" if dry else "eat_tiny", **small).to(dev),
              "swin": timm.create_model(SWIN, num_classes=10, **(swin_small if dry else {})).to(dev)}
    if a.original:
        from original import load_original
        models = {"original": load_original(a.original, **small).to(dev), **models}
    xi = torch.randn(a.infer_batch, 3, img, img, device=dev)
    xt = torch.randn(a.train_batch, 3, img, img, device=dev)

    def fns(model, dtype, compiled=False):
        "bench.step_fns of the (compiled) model: inference on the inference batch, a training step on the training one."
        fwd = (torch.compile(model, backend="eager") if dry else torch.compile(model)) if compiled else model
        return {"infer": step_fns(fwd, xi, dtype)[0], "train": step_fns(fwd, xt, dtype)[1]}

    def timed(calls: dict, what: str) -> dict:
        "Median seconds per call of each callable, interleaved, after warm-up rounds; one that fails is dropped."
        for k, f in list(calls.items()):
            try: f()
            except Exception as e:  # noqa: BLE001 - e.g. the original code's numpy round trip refuses bf16 tensors
                info["skipped"].append(f"{what} {k} failed: {type(e).__name__}: {str(e)[:300]}")
                print(f"{what} {k} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
                del calls[k]
        for _ in range(0 if dry else 1):
            for f in calls.values(): f()
        sync()
        t = {k: [] for k in calls}
        for _ in range(a.repeats):
            for k, f in calls.items():
                sync(); t0 = time.perf_counter()
                for _ in range(a.iters): f()
                sync(); t[k].append((time.perf_counter() - t0) / a.iters)
        return {k: statistics.median(v) for k, v in t.items()}

    rows, compile_s = [], {}
    variants = {"eager_fp32": {k: fns(m, None) for k, m in models.items()},
                "eager_bf16": {k: fns(m, torch.bfloat16) for k, m in models.items()}}
    if not a.no_compile:
        variants["compiled_bf16"] = {}
        for k in ("eat", "swin", "original"):
            if k not in models: continue
            if time.perf_counter() - t_start > a.budget_s:
                info["skipped"].append(f"compile {k}: past the {a.budget_s:.0f} s budget"); continue
            f = fns(models[k], torch.bfloat16, compiled=True)
            t0 = time.perf_counter()
            try:
                for mode in ("infer", "train"): f[mode]()
                sync()
                variants["compiled_bf16"][k], compile_s[k] = f, round(time.perf_counter() - t0, 1)
                print(f"compiled {k} in {time.perf_counter() - t0:.0f} s", flush=True)
            except Exception as e:  # noqa: BLE001 - a failed compile is a result to report
                info["skipped"].append(f"compiled_bf16 {k} failed: {type(e).__name__}: {str(e)[:400]}")
                print(info["skipped"][-1], flush=True)
    info["seconds"]["compile"] = compile_s
    for var, per_model in variants.items():
        for mode, batch in (("infer", a.infer_batch), ("train", a.train_batch)):
            med = timed({k: f[mode] for k, f in per_model.items()}, f"{var} {mode}")
            for k, s in med.items():
                rows.append(dict(model=k, variant=var, mode=mode, batch=batch, images_per_s=batch / s,
                                 vs_swin=med["swin"] / s if "swin" in med else "",
                                 vs_original=med["original"] / s if "original" in med else "",
                                 vs_own_eager_fp32="", vs_original_eager_fp32=""))
    for r in rows:
        ref = [q for q in rows if q["model"] == r["model"] and q["mode"] == r["mode"] and q["variant"] == "eager_fp32"]
        r["vs_own_eager_fp32"] = r["images_per_s"] / ref[0]["images_per_s"] if ref else ""
        orig = [q for q in rows if q["model"] == "original" and q["mode"] == r["mode"] and q["variant"] == "eager_fp32"]
        # the original code cannot run under bf16 autocast (its numpy round trip refuses bf16): compare with its fp32
        r["vs_original_eager_fp32"] = r["images_per_s"] / orig[0]["images_per_s"] if orig else ""
    write_csv(rows, out / "throughput.csv")
    info["seconds"]["throughput"] = round(time.perf_counter() - t_start, 1)
    save_info()
    for r in rows:
        print(f"{r['model']:<9}{r['variant']:<14}{r['mode']:<6}{r['images_per_s']:9.1f} img/s  "
              f"{r['vs_swin'] if r['vs_swin'] == '' else round(r['vs_swin'], 2)}x swin", flush=True)
    del variants, models
    if dev == "cuda": torch.cuda.empty_cache()

    # ---- 2. 200-step training smoke
    from eat.synth import SyntheticScenes
    t0 = time.perf_counter()
    torch.manual_seed(0)
    data = SyntheticScenes(size=img, seed=0, labels="object", length=a.steps * a.smoke_batch)
    workers = 0 if dry else (a.workers or max(1, len(os.sched_getaffinity(0)) - 2))
    loader = torch.utils.data.DataLoader(data, batch_size=a.smoke_batch, num_workers=workers, pin_memory=dev == "cuda",
                                         **({"prefetch_factor": 4} if workers else {}))
    model = create_model("eat_micro" if dry else "eat_tiny", num_classes=data.num_classes, **small).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
    if dev == "cuda": torch.cuda.reset_peak_memory_stats()
    log, losses, t_steps = [], [], None
    for step, (x, y) in enumerate(loader, 1):
        if step == 11: sync(); t_steps = time.perf_counter()  # after warm-up
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(_logits(model(x)).float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]): raise RuntimeError(f"smoke: loss is {losses[-1]} at step {step}")
        if step % 10 == 0:
            log.append(dict(step=step, loss_mean_last10=statistics.mean(losses[-10:]),
                            seconds=round(time.perf_counter() - t0, 2)))
            print(f"smoke step {step}: loss {log[-1]['loss_mean_last10']:.3f}", flush=True)
    sync()
    steps_timed = len(losses) - 10
    ips = steps_timed * a.smoke_batch / (time.perf_counter() - t_steps) if steps_timed > 0 else float("nan")
    write_csv(log, out / "smoke.csv")
    info["smoke"] = dict(steps=len(losses), batch=a.smoke_batch, img=img, workers=workers, images_per_s=round(ips, 1),
                         peak_memory_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2) if dev == "cuda" else None,
                         loss_first10=round(statistics.mean(losses[:10]), 4),
                         loss_last10=round(statistics.mean(losses[-10:]), 4), chance_loss=round(math.log(8), 4))
    info["seconds"]["smoke"] = round(time.perf_counter() - t0, 1)
    save_info()
    print(f"smoke: {info['smoke']}")
    print(f"gpu_check: done in {info['seconds']['total']} s; results in {out}")
    return 0


def write_csv(rows: list, path: Path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows: w.writerow({k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in r.items()})


if __name__ == "__main__":
    sys.exit(main())
