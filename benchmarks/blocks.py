"""Where eat_tiny's time goes against Swin-T's, part by part: stems and down-sampling, each stage, and the blocks
of the third stage (EAT's `L` and `D` blocks, Swin's block), inference and a forward + backward pass.

Every part runs on the input it sees inside its model (batch 8, 224 px images), in one process, the parts
interleaved, median of the repeats. Swin's stages 2-4 include their patch merging; EAT's down-sampling is its own
row. Writes blocks.txt (with machine, commit and load) to benchmarks/results/ (or --out).

    .venv/bin/python benchmarks/blocks.py        # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/blocks.py --batch 1 --repeats 1 --out /tmp/b   # a check that it runs (seconds)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent)); sys.path.insert(0, str(HERE))
import timm  # noqa: E402

from bench import SWIN, machine_info  # noqa: E402
from eat.model import create_model  # noqa: E402


def parts(eat, swin, x: torch.Tensor) -> dict:
    "name -> (callable returning a tensor, its input), each input the one the part sees in its model."
    with torch.no_grad():
        e_in, e_out, s_in = [eat.patch_proj(x)], [], [swin.patch_embed(x)]
        for i in range(4):
            e_out.append(eat.stages[i](e_in[-1])[0])
            if i < 3: e_in.append(eat.down_projs[i](e_out[-1]))
            s_in.append(swin.layers[i](s_in[-1]))
        s3 = swin.layers[2].downsample(s_in[2])  # what stage 3's Swin blocks see
    st, sb = eat.stages[2], swin.layers[2].blocks[0]
    out = {"eat stem": (eat.patch_proj, x), "swin stem": (swin.patch_embed, x)}
    for i in range(3): out[f"eat down {i + 1}"] = (eat.down_projs[i], e_out[i])
    for i in range(4):
        out[f"eat stage {i + 1}"] = (lambda z, i=i: eat.stages[i](z)[0], e_in[i])
        out[f"swin stage {i + 1}"] = (swin.layers[i], s_in[i])
    z3 = e_in[2]
    out.update({"eat stage-3 L block": (lambda z: st._block(0, z)[0], z3),
                "eat stage-3 D block": (lambda z: st._block(1, z)[0], z3),
                "swin stage-3 block": (sb, s3),
                "eat stage-3 L attention": (lambda z: st.attns[0](st.layer_norms[0](z)), z3),
                "eat stage-3 D attention": (lambda z: st.attns[1](st.layer_norms[2](z))[0], z3),
                "swin stage-3 attention": (lambda z: sb._attn(sb.norm1(z)), s3)})
    return out


def time_parts(ps: dict, repeats: int, train: bool) -> dict:
    "Median milliseconds of each part, interleaved, after one untimed round."
    times = {k: [] for k in ps}
    for r in range(repeats + 1):
        for k, (f, z) in ps.items():
            if train:
                zz = z.detach().requires_grad_()
                t0 = time.perf_counter(); f(zz).sum().backward(); dt = time.perf_counter() - t0
            else:
                with torch.no_grad(): t0 = time.perf_counter(); f(z); dt = time.perf_counter() - t0
            if r: times[k].append(dt)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9); ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(HERE / "results"))
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    info = machine_info(torch.get_num_threads())
    eat, swin = create_model("eat_tiny", num_classes=10), timm.create_model(SWIN, num_classes=10)
    ps = parts(eat, swin, torch.randn(a.batch, 3, 224, 224))
    eat.eval(); swin.eval(); infer = time_parts(ps, a.repeats, False)
    eat.train(); swin.train(); train = time_parts(ps, a.repeats, True)
    lines = [f"commit {info['git_commit']}, {info['started']}, {info['cpu_model']}, {info['torch_threads']} threads, "
             f"batch {a.batch}, 224 px, median of {a.repeats}; load {info['load_avg_start']} -> "
             f"{[round(v, 2) for v in os.getloadavg()]}",
             f"{'part':26s} {'inference ms':>13s} {'fwd+bwd ms':>11s}"]
    lines += [f"{k:26s} {infer[k]:13.1f} {train[k]:11.1f}" for k in ps]
    for mode, t in (("inference", infer), ("fwd+bwd", train)):
        e = sum(t[k] for k in t if k.startswith(("eat stem", "eat down", "eat stage ")))
        s = sum(t[k] for k in t if k.startswith(("swin stem", "swin stage ")))
        lines.append(f"{mode}: stems + stages (+ eat's down-sampling) eat {e:.0f} ms, swin {s:.0f} ms, "
                     f"swin / eat {s / e:.2f}x")
    text = "\n".join(lines)
    print(text)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "blocks.txt").write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
