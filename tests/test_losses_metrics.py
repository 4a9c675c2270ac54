"Bad input, scipy agreement, split-wide accumulation (also across 2 processes) and the paired bootstrap."
import math
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy.stats import pearsonr, spearmanr

from eat.losses import EMDLoss, ScoreL1Loss, ScoreMSELoss, emd_loss, get_loss
from eat.metrics import (ConstantInputWarning, MetricAccumulator, accuracy_at, dist_to_score, emd, iaa_metrics, mae,
                         mse, paired_bootstrap_srcc, plcc, srcc)


def _dists(n, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, k, generator=g).softmax(1)
    t = torch.rand(n, k, generator=g)
    return p, t / t.sum(1, keepdim=True)


# ---------------------------------------------------------------- losses: bad input
@pytest.mark.parametrize("pred_shape,target_shape,msg", [
    ((4, 10), (4, 9), "shapes differ"),
    ((4, 10), (3, 10), "shapes differ"),
    ((10,), (10,), "2-D"),
    ((2, 4, 10), (2, 4, 10), "2-D"),
    ((0, 10), (0, 10), "empty batch"),
    ((4, 1), (4, 1), "at least 2 bins"),
])
def test_emd_bad_shapes(pred_shape, target_shape, msg):
    t = torch.full(target_shape, 1.0 / target_shape[-1])
    with pytest.raises(ValueError, match=msg):
        emd_loss(torch.rand(pred_shape), t)


def test_emd_target_must_sum_to_one_and_names_row():
    p, t = _dists(5)
    t[3] *= 1.5
    with pytest.raises(ValueError, match=r"target row 3 sums to 1\.5"):
        emd_loss(p, t)
    counts = torch.randint(1, 50, (5, 10)).float()  # raw vote counts, a typical mistake
    with pytest.raises(ValueError, match="row 0 sums to"):
        EMDLoss()(p, counts)


@pytest.mark.parametrize("where", ["pred", "target"])
def test_emd_nan_is_rejected(where):
    p, t = _dists(4)
    (p if where == "pred" else t)[1, 7] = float("nan")
    with pytest.raises(ValueError, match=f"{where} has non-finite values in row 1"):
        emd_loss(p, t)


def test_emd_pred_is_raw_unless_checked():
    p, t = _dists(4)
    raw = p * 4 - 0.1  # not a distribution, as the original head's outputs
    assert torch.isfinite(emd_loss(raw, t))
    with pytest.raises(ValueError, match="pred row 0"):
        emd_loss(raw, t, check_pred=True)


def test_emd_values_r1_r2_and_gradient():
    p, t = _dists(8, seed=1)
    cdf = (p.cumsum(1) - t.cumsum(1)).double()
    assert torch.allclose(emd_loss(p, t).double(), cdf.pow(2).mean(1).sqrt().mean(), atol=1e-6)
    assert torch.allclose(emd_loss(p, t, r=1).double(), cdf.abs().mean(1).mean(), atol=1e-6)
    x = torch.randn(8, 10, requires_grad=True)
    emd_loss(x.softmax(1), t).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    y = t.clone().requires_grad_(True)
    emd_loss(y, t).backward()
    assert torch.equal(y.grad, torch.zeros_like(t))  # no NaN at zero distance


def test_score_losses_bad_input():
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, 1\)"):
        ScoreMSELoss()(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="lengths differ"):
        ScoreL1Loss()(torch.zeros(4, 1), torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        ScoreMSELoss()(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="target has 1 non-finite"):
        ScoreL1Loss()(torch.zeros(3), torch.tensor([0.0, float("nan"), 1.0]))
    # (B, 1) against (B,) must not broadcast to B x B
    assert torch.isclose(ScoreMSELoss()(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 4.0])), torch.tensor(2.0))


def test_get_loss():
    assert get_loss("emd").r == 2 and get_loss("emd1").r == 1
    assert isinstance(get_loss("mse"), ScoreMSELoss) and isinstance(get_loss("l1"), ScoreL1Loss)
    assert isinstance(get_loss("ce"), torch.nn.CrossEntropyLoss)
    with pytest.raises(ValueError, match=r"unknown loss 'emd3'.*'emd1'"):
        get_loss("emd3")


# ---------------------------------------------------------------- metrics: bad input
def test_metric_bad_input():
    a = np.arange(5.0)
    with pytest.raises(ValueError, match="shapes differ"):
        srcc(a, a[:4])
    with pytest.raises(ValueError, match="at least 2"):
        plcc([1.0], [1.0])
    with pytest.raises(ValueError, match="at least 1"):
        mae([], [])
    with pytest.raises(ValueError, match="non-finite"):
        mse(a, [0, 1, np.inf, 3, 4])
    with pytest.raises(ValueError, match="true_dist row 1 sums to"):
        emd(np.full((2, 10), 0.1), np.array([[0.1] * 10, [0.2] * 10]))
    with pytest.warns(ConstantInputWarning):
        assert math.isnan(srcc(np.full(5, 3.0), a))
    with pytest.warns(ConstantInputWarning):
        assert math.isnan(plcc(a, np.zeros(5)))


# ---------------------------------------------------------------- metrics: scipy agreement
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kind", ["continuous", "ties", "float32-torch"])
def test_srcc_plcc_match_scipy(seed, kind):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 2000))
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    if kind == "ties":  # heavy ties on both sides, like AVA's rounded mean scores
        x, y = np.round(x * 2) / 2, np.round(y)
        if (x == x[0]).all() or (y == y[0]).all(): x[0], y[0] = x[0] + 1, y[0] + 1
    if kind == "float32-torch":
        xt = torch.tensor(x, dtype=torch.float32)
        x = xt.double().numpy()  # scipy sees the same rounded values
        assert abs(srcc(xt, y) - spearmanr(x, y)[0]) < 1e-6 and abs(plcc(xt, y) - pearsonr(x, y)[0]) < 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about n=2
        s, p = spearmanr(x, y)[0], pearsonr(x, y)[0]
    assert abs(srcc(x, y) - s) < 1e-6
    assert abs(plcc(x, y) - p) < 1e-6


def test_accuracy_threshold_and_default():
    y = np.array([4.9, 5.0, 5.1, 7.0])
    assert accuracy_at(np.full(4, 5.0), y) == 0.5  # 5.0 is "bad", as the original's `score <= 5 -> 0`
    assert accuracy_at(np.array([1.0, 5.0, 5.0001, 9.0]), y) == 1.0
    m = iaa_metrics(y / 10, y / 10)
    assert m["threshold"] == 0.5 and m["acc"] == 1.0
    assert iaa_metrics(y, y)["threshold"] == 5.0


def test_iaa_metrics_on_mask_equals_metrics_on_subset():
    rng = np.random.default_rng(3)
    y = rng.uniform(1, 10, 300)
    p = y + rng.normal(size=300)
    pd_, td_ = (d.numpy() for d in _dists(300))
    mask = rng.random(300) < 0.3
    full = iaa_metrics(p, y, pd_, td_, mask=mask)
    sub = iaa_metrics(p[mask], y[mask], pd_[mask], td_[mask], threshold=5.0)
    assert full == sub and full["n"] == mask.sum()


# ---------------------------------------------------------------- accumulator
def test_accumulator_equals_one_shot():
    rng = np.random.default_rng(4)
    pd_, td_ = _dists(257, seed=4)
    y = dist_to_score(td_)
    p = y + rng.normal(size=257)
    acc = MetricAccumulator()
    for s, e in [(0, 1), (1, 64), (64, 200), (200, 257)]:
        acc.update(torch.tensor(p[s:e], dtype=torch.float64), torch.tensor(y[s:e]), pd_[s:e], td_[s:e])
    assert len(acc) == 257
    got, want = acc.compute(), iaa_metrics(p, y, pd_, td_)
    assert got.keys() == want.keys()
    assert all(abs(got[k] - want[k]) < 1e-12 for k in want)
    mask = y > 5.5
    assert acc.compute(mask=mask) == iaa_metrics(p, y, pd_, td_, mask=mask, threshold=want["threshold"])
    acc.reset()
    with pytest.raises(ValueError, match="no batches"):
        acc.compute()


def _dist_worker(rank, world, init_file, out_file, p, y):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        n = len(y)
        ids = np.arange(rank, n + (n % world and world - n % world), world) % n  # DistributedSampler-style padding
        acc = MetricAccumulator()
        for chunk in np.array_split(ids, 3):
            acc.update(p[chunk], y[chunk], ids=chunk)
        res = acc.compute()
        if rank == 0: torch.save(res, out_file)
    finally:
        dist.destroy_process_group()


def test_accumulator_all_gathers_across_ranks(tmp_path):
    rng = np.random.default_rng(5)
    y = rng.uniform(1, 10, 101)  # 101 is not divisible by 2: one padded duplicate
    p = y + rng.normal(size=101)
    out = tmp_path / "res.pt"
    # fork: the children inherit the imports (spawn re-imports torch and scipy, ~10 s on a small machine)
    mp.start_processes(_dist_worker, args=(2, str(tmp_path / "init"), str(out), p, y), nprocs=2, start_method="fork")
    assert torch.load(out, weights_only=False) == iaa_metrics(p, y)


# ---------------------------------------------------------------- paired bootstrap
def _gauss_srcc(noise):
    "Population Spearman correlation of (X, X + noise * E) for independent standard normals X, E."
    rho = 1 / math.sqrt(1 + noise ** 2)
    return 6 / math.pi * math.asin(rho / 2)


def test_bootstrap_ci_contains_true_difference():
    true = _gauss_srcc(0.5) - _gauss_srcc(1.0)
    covered = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        y = rng.normal(size=300)
        r = paired_bootstrap_srcc(y, y + 0.5 * rng.normal(size=300), y + rng.normal(size=300), n_boot=200, seed=seed)
        assert r["low"] <= r["diff"] <= r["high"]
        covered += r["low"] <= true <= r["high"]
    assert covered >= 25, f"95% intervals covered the true difference {covered}/30 times"


def test_bootstrap_is_seeded_and_detects_no_difference():
    rng = np.random.default_rng(7)
    y = rng.normal(size=200)
    a, b = y + rng.normal(size=200), y + rng.normal(size=200)
    r1, r2 = paired_bootstrap_srcc(y, a, b, n_boot=200, seed=3), paired_bootstrap_srcc(y, a, b, n_boot=200, seed=3)
    assert r1 == r2
    assert paired_bootstrap_srcc(y, a, b, n_boot=200, seed=4) != r1
    assert r1["p"] > 0.05 and r1["low"] < 0 < r1["high"]
    # identical predictions: the difference is exactly 0 in every resample
    r = paired_bootstrap_srcc(y, a, a, n_boot=50)
    assert r["diff"] == 0 and r["low"] == r["high"] == 0 and r["p"] == 1.0
    assert abs(r1["diff"] - (spearmanr(a, y)[0] - spearmanr(b, y)[0])) < 1e-9
