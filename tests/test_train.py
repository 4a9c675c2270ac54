"Trainer: CLI end to end, kill + resume equality, atomic checkpoints, NaN guard, config round trip, explore/exploit, DDP."
import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

import eat.config as C
import eat.runtime as R
import eat.train as T
from eat.loaders import make_run_loader
from eat.weights import load_weights
from eat.deform import DeformableAttention

BIN = Path(sys.executable).parent
# A very small non-hybrid EAT (no BatchNorm, so DDP on CPU matches one process) at 64 px on 80 synthetic images.
SMALL_MODEL = ("model_overrides={dim_stem: 16, dims: [16, 32, 64, 128], heads: [1, 2, 2, 4], groups: [-1, -1, 1, 2], "
               "window_sizes: [4, 4, 4, 2], drop_path_rate: 0.1}")


def small_overrides(root, **kw) -> list[str]:
    base = {"model": "eat_micro", "data.root": str(root), "data.synth_n": 80, "data.synth_size": 64,
            "data.img_size": 64, "data.fractions": "[0.6, 0.2, 0.2]", "batch_size": 8, "epochs": 3,
            "optimizer": "adamw", "lr": 2e-3, "schedule": "cosine", "warmup_epochs": 0.5, "grad_clip": 1.0,
            "explore_epochs": 2, "eval_init": "false"}
    base.update(kw)
    return [SMALL_MODEL] + [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    "80 synthetic 64 px images (48 train / 16 val / 16 test)."
    from eat.synth import make_synthetic_ava
    return make_synthetic_ava(tmp_path_factory.mktemp("synth") / "s64", n=80, size=64, seed=0, progress=False)


def cli(args, env_extra=None, check=True, exe="eat-train"):
    env = {k: v for k, v in os.environ.items() if k != "EAT_FAULT"}
    env.update(OMP_NUM_THREADS="1", **(env_extra or {}))
    r = subprocess.run([str(BIN / exe), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    if check and r.returncode != 0: raise AssertionError(f"{exe} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def model_state(path) -> dict: return R.load_checkpoint(path)["model"]


def val_log(run) -> pd.DataFrame:
    return pd.read_csv(Path(run) / "log.csv").drop(columns=["images_per_s", "epoch_seconds"])


@pytest.fixture(scope="module")
def run_a(synth, tmp_path_factory):
    "An uninterrupted 3-epoch CLI run with augmentation, drop-path and mid-epoch checkpoints."
    out = tmp_path_factory.mktemp("runs") / "a"
    cli(["--config", "tiny", "--out", out, "--no-progress", *small_overrides(synth, ckpt_every=4)])
    return out


def test_cli_end_to_end(run_a):
    names = {p.name for p in run_a.iterdir()}
    assert {"best.safetensors", "best.json", "last.pt", "config.yaml", "split.csv", "split.json", "log.csv",
            "metrics.json", "test_predictions.csv", "tb"} <= names
    m = json.loads((run_a / "metrics.json").read_text())
    assert m["epochs"] == 3 and 1 <= m["best_epoch"] <= 3 and m["test"]["n"] == 16
    log = pd.read_csv(run_a / "log.csv")
    assert log["epoch"].tolist() == [1, 2, 3] and log["explore"].tolist() == [1, 1, 0]
    assert np.isfinite(log[["train_loss", "val_srcc", "lr", "images_per_s"]].to_numpy()).all()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run_a / "tb")); acc.Reload()
    assert sorted({e.step for e in acc.Scalars("val_srcc")}) == [1, 2, 3]
    # every epoch is validated and saved with the rule as the run ends (off after exploitation), whichever epoch won
    meta = json.loads((run_a / "best.json").read_text())
    assert meta["offset_rule_on"] is False
    assert load_weights(run_a / "best.safetensors").stages[2].attns[1].rule_on == meta["offset_rule_on"]
    # eat-evaluate reproduces the test metrics and writes per-image predictions
    r = cli(["--weights", run_a / "best.safetensors", "--split", "test", "--out", run_a / "eval"], exe="eat-evaluate")
    ev_m = json.loads((run_a / "eval/metrics_test.json").read_text())
    assert ev_m["srcc"] == pytest.approx(m["test"]["srcc"], abs=1e-9)
    pred = pd.read_csv(run_a / "eval/predictions_test.csv", dtype={"image_id": str})
    assert len(pred) == 16 and {"image_id", "pred_score", "true_score"} <= set(pred.columns)


def test_original_part_files_train_and_evaluate_as_they_are(synth, run_a, tmp_path):
    """The original EAT / TANet split files (image_id,score2..score11,tag1..tag3, one CSV per part) train as they are:
    their parts, their SHA-256 in split.json, the split audit beside it; eat-evaluate reads them too (issue 26)."""
    import shutil
    from eat.data import file_sha256, load_split, write_ava_parts
    given = load_split(run_a / "split.csv")
    files = write_ava_parts(given, tmp_path / "parts")  # run_a's split, as the original code keeps it
    labels = ",".join(str(files[s]) for s in ("train", "val", "test"))
    over = small_overrides(synth, epochs=1, **{"data.kind": "ava_parts", "data.labels": labels,
                                               "data.root": synth / "images"})
    r = cli(["--config", "tiny", "--out", tmp_path / "run", "--no-progress", *over])
    assert "cannot tell whether the test part" in r.stderr  # no official test list given: the audit says so
    split = load_split(tmp_path / "run" / "split.csv")
    assert split.set_index("image_id").split.to_dict() == given.set_index("image_id").split.to_dict()  # theirs
    prov = json.loads((tmp_path / "run" / "split.json").read_text())
    assert {s: p["sha256"] for s, p in prov["parts"].items()} == {s: file_sha256(f) for s, f in files.items()}
    audit = json.loads((tmp_path / "run" / "split_audit.json").read_text())
    assert {s: v["n_images"] for s, v in audit["splits"].items()} == {"train": 48, "val": 16, "test": 16}
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["test"]["n"] == 16 and np.isfinite(m["test"]["srcc"])
    # eat-evaluate on the model folder alone, its data given by the config: the part files again, not the run's split
    shutil.copytree(tmp_path / "run" / "model", tmp_path / "alone" / "model")
    cli(["--weights", tmp_path / "alone" / "model", "--config", tmp_path / "run" / "config.yaml", "--split", "test",
         "--out", tmp_path / "eval"], exe="eat-evaluate")
    ev = json.loads((tmp_path / "eval" / "metrics_test.json").read_text())
    assert ev["n"] == 16 and ev["srcc"] == pytest.approx(m["test"]["srcc"], abs=1e-6)


def test_kill_and_resume_equals_uninterrupted(synth, run_a, tmp_path):
    out = tmp_path / "b"
    # 6 steps an epoch; checkpoints at steps 4, 6 (epoch end), 8; SIGKILL before step 9 (middle of epoch 2)
    r = cli(["--config", "tiny", "--out", out, "--no-progress", *small_overrides(synth, ckpt_every=4)],
            env_extra={"EAT_FAULT": "kill@9"}, check=False)
    assert r.returncode == -9, (r.returncode, r.stderr)
    ck = R.load_checkpoint(out / "last.pt")["state"]
    assert (ck["epoch"], ck["batches_done"], ck["step"]) == (1, 2, 8)
    assert not (out / "metrics.json").exists()
    cli(["--out", out, "--resume", "--no-progress"])
    a, b = model_state(run_a / "last.pt"), model_state(out / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    wa, wb = load_file(run_a / "best.safetensors"), load_file(out / "best.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    pd.testing.assert_frame_equal(val_log(run_a), val_log(out))
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (run_a, out))
    assert ma["test"] == mb["test"] and ma["best_epoch"] == mb["best_epoch"]


def test_checkpoint_write_is_atomic(tmp_path):
    "SIGKILL in the middle of writing a checkpoint leaves the previous one intact."
    code = f"""
import os, signal, torch
from eat.files import atomic_write  # what save_checkpoint writes through
p = {str(tmp_path / 'last.pt')!r}
atomic_write(p, lambda tmp: torch.save({{'epoch': 1, 'w': torch.ones(3)}}, tmp))
real = torch.save
def dying_save(obj, f):
    with open(f, 'wb') as fh: fh.write(b'PK' + b'x' * 100000); fh.flush(); os.fsync(fh.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
atomic_write(p, lambda tmp: torch.save({{'epoch': 2, 'w': torch.zeros(3)}}, tmp))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr
    ck = R.load_checkpoint(tmp_path / "last.pt")
    assert ck["epoch"] == 1 and torch.equal(ck["w"], torch.ones(3))


def test_nan_guard_keeps_last_good_checkpoint(synth, tmp_path, monkeypatch):
    cfg = C.load_config("tiny", small_overrides(synth, epochs=2))
    monkeypatch.setenv("EAT_FAULT", "nan@8")  # step 8 = third batch of epoch 2
    with pytest.raises(T.NonFiniteLoss, match=r"Loss is nan at epoch 2, step 8.*last good checkpoint"):
        T.train(cfg, tmp_path / "run", progress=False)
    ck = R.load_checkpoint(tmp_path / "run/last.pt")
    assert ck["state"]["epoch"] == 1 and ck["state"]["step"] == 6
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    # the CLI says so and exits with status 3
    r = cli(["--config", "tiny", "--out", tmp_path / "cli", "--no-progress", *small_overrides(synth, epochs=2)],
            env_extra={"EAT_FAULT": "nan@3"}, check=False)
    assert r.returncode == 3 and "last good checkpoint" in r.stderr


def test_config_round_trip_and_errors(tmp_path):
    for name, cfg in C.CONFIGS.items():
        p = C.save_config(cfg, tmp_path / f"{name}.yaml")
        back = C.load_config(p)
        assert back == cfg
        assert yaml.safe_load(C.save_config(back, tmp_path / "again.yaml").read_text()) == yaml.safe_load(p.read_text())
    r = cli(["--config", "tiny", "--out", tmp_path / "x", "--print-config", "lr=3e-4", "data.num_workers=2"])
    printed = C.config_from_dict(yaml.safe_load(r.stdout))
    assert printed == replace(C.CONFIGS["tiny"], lr=3e-4, data=replace(C.CONFIGS["tiny"].data, num_workers=2))
    for bad, msg in (("epoch=3", "Did you mean epochs"), ("data.kindd=ava", "data.kind"), ("lr=fast", "lr='fast'"),
                     ("schedule=linear", "schedule='linear'"), ("model_overrides.foo=1", "foo")):
        r = cli(["--config", "tiny", "--out", tmp_path / "x", bad], check=False)
        assert r.returncode == 2 and msg in r.stderr, (bad, r.stderr)
    with pytest.raises(ValueError, match="batch_size=10 is not divisible by the 3"):
        make_run_loader(list(range(10)), replace(C.CONFIGS["tiny"], batch_size=10), R.Runtime(world=3), True)


def test_explore_then_exploit(synth, tmp_path, monkeypatch):
    "The offset rule is on in every training forward of exploration epochs and off in exploitation epochs."
    seen, build = [], T.run_model
    def spy(*a, **k):
        m = build(*a, **k)
        for mod in m.modules():
            if isinstance(mod, DeformableAttention):
                mod.register_forward_hook(lambda mod, i, o: seen.append(mod.rule_on) if mod.training else None)
        return m
    monkeypatch.setattr(T, "run_model", spy)
    cfg = C.load_config("tiny", small_overrides(synth, epochs=3, explore_epochs=1, eval_test="false"))
    T.train(cfg, tmp_path / "run", progress=False)
    n_blocks, steps = 3, 6
    assert seen == [True] * (n_blocks * steps) + [False] * (2 * n_blocks * steps)
    # and the switch matters: damped offsets in exploration, raw offsets in exploitation
    m = load_weights(tmp_path / "run/best.safetensors", damping=0.25).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        m.set_exploration(True); on = m(x)
        m.set_exploration(False); off = m(x)
    assert all(not torch.equal(a, b) for a, b in zip(on.positions, off.positions))
    ref = on.references[0]  # the first D block sees the same input either way: the rule only shrinks its offsets
    assert torch.equal(ref, off.references[0])
    assert ((on.positions[0] - ref).abs() <= (off.positions[0] - ref).abs() + 1e-6).all()


def test_ddp_two_processes_match_one(synth, tmp_path):
    args = small_overrides(synth, epochs=2, **{"data.augment": "false", "eval_test": "false", "eval_init": "true"})
    args[0] = args[0].replace("drop_path_rate: 0.1", "drop_path_rate: 0.0")
    cli(["--config", "tiny", "--out", tmp_path / "one", "--no-progress", *args])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29561",
                        str(BIN / "eat-train"), "--config", "tiny", "--out", str(tmp_path / "two"), "--no-progress",
                        *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    one, two = pd.read_csv(tmp_path / "one/log.csv"), pd.read_csv(tmp_path / "two/log.csv")
    cols = ["val_srcc", "val_plcc", "val_mae", "val_emd", "train_loss"]
    assert (one["val_n"] == 16).all() and (two["val_n"] == 16).all()
    np.testing.assert_allclose(one[cols].fillna(0).to_numpy(), two[cols].fillna(0).to_numpy(), atol=2e-3)
    wa, wb = model_state(tmp_path / "one/last.pt"), model_state(tmp_path / "two/last.pt")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-3
    assert json.loads((tmp_path / "two/metrics.json").read_text())["world_size"] == 2


def test_short_run_reduces_training_loss(synth, tmp_path):
    "A short run fits: the training EMD falls from epoch to epoch and ends well below the first epoch's."
    # Validation SRCC does not yet rise reliably on this small synthetic set (see the trainer notebook), so the
    # learning check here is on the loss the optimiser minimises.
    cfg = C.load_config("tiny", small_overrides(synth, epochs=3, eval_test="false"))
    res = T.train(cfg, tmp_path / "run", progress=False)
    loss = res["history"]["train_loss"]
    assert loss[-1] < 0.85 * loss[0], loss
