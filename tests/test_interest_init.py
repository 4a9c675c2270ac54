"""interest_init='grid': a fresh EAT is its DAT twin (same weights, rule off), and differs from it by the rule alone."""
import pytest
import torch

from eat.deform import DeformableAttention, offset_rule, uniform_grid
from eat.model import EATConfig, create_model
from eat.weights import load_weights, save_weights

STUDY = dict(img_size=128, window_sizes=[4, 4, 4, 2], drop_path_rate=0.0)  # the 128 px cpu recipe: 8x8 and 4x4 D maps


def _twins(eat_name: str, pooling: str, **kw):
    "DAT with random weights, and EAT(grid) loaded from DAT's state dict (non-strict)."
    torch.manual_seed(0)
    dat = create_model(eat_name.replace('eat_', 'dat_'), **kw).eval()
    eat = create_model(eat_name, interest_init='grid', reference_pooling=pooling, **kw).eval()
    res = eat.load_state_dict(dat.state_dict(), strict=False)
    assert res.unexpected_keys == []
    assert res.missing_keys and all('.ref_point14.' in k for k in res.missing_keys)
    return dat, eat


@pytest.mark.parametrize('pooling', ['image', 'batch'])
@pytest.mark.parametrize('name,kw', [('eat_micro', {}), ('eat_micro_hybrid', {}), ('eat_micro_hybrid', STUDY)])
def test_grid_init_equals_dat_with_rule_off(name, kw, pooling):
    dat, eat = _twins(name, pooling, **kw)
    s = dat.cfg.img_size
    x = torch.randn(3, 3, s, s)
    eat.set_exploration(False)
    with torch.no_grad(): a, b = dat(x), eat(x)
    assert (a.logits - b.logits).abs().max() <= 1e-5
    for pa, pb, ra, rb in zip(a.positions, b.positions, a.references, b.references):
        assert (pa - pb).abs().max() <= 1e-5 and (ra - rb).abs().max() <= 1e-6
    assert len(b.positions) == sum(t == 'D' for spec in eat.cfg.stage_spec for t in spec)


@pytest.mark.parametrize('pooling', ['image', 'batch'])
@pytest.mark.parametrize('name', ['eat_micro', 'eat_micro_hybrid'])
def test_grid_init_differs_from_dat_by_the_rule_alone(name, pooling):
    dat, eat = _twins(name, pooling, **STUDY)
    x = torch.randn(2, 3, 128, 128)
    eat.set_exploration(True)
    with torch.no_grad(): a, b = dat(x), eat(x)
    assert (a.logits - b.logits).abs().max() > 1e-4  # the rule changes the output
    # the first D block sees the same input in both, so its positions are DAT's offsets, damped by the rule
    grid, off = a.references[0], a.positions[0] - a.references[0]
    torch.testing.assert_close(b.positions[0], grid + offset_rule(off, grid, eat.cfg.damping), atol=1e-6, rtol=0)
    torch.testing.assert_close(b.references[0], grid, atol=1e-6, rtol=0)


def test_grid_init_draws_no_random_numbers():
    # with the same seed, EAT(grid) gets DAT's initial weights (a fresh head too) without loading anything
    torch.manual_seed(0)
    dat = create_model('dat_micro_hybrid', **STUDY).eval()
    torch.manual_seed(0)
    eat = create_model('eat_micro_hybrid', interest_init='grid', **STUDY).eval()
    sd = dat.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in eat.state_dict().items() if '.ref_point14.' not in k)
    x = torch.randn(2, 3, 128, 128)
    eat.set_exploration(False)
    with torch.no_grad(): assert (eat(x).logits - dat(x).logits).abs().max() <= 1e-5


def test_grid_init_is_zero_conv_on_the_grid_and_trains():
    blk = DeformableAttention(8, 4, 16, 2, interest_init='grid')
    assert blk.ref_point14.weight.abs().sum() == 0 and blk.ref_point14.bias.abs().sum() == 0
    x = torch.randn(2, 8, 8, 64)
    torch.testing.assert_close(blk.reference_points(x)[0], uniform_grid(8, 8), atol=1e-6, rtol=0)
    blk(x)[0].square().mean().backward()
    assert blk.ref_point14.weight.grad.abs().sum() > 0  # the zero conv is not stuck: the points can leave the grid
    assert 'grid_logit' not in blk.state_dict()  # derived buffer: checkpoints keep the original keys


def test_default_stays_original():
    assert EATConfig().interest_init == 'original'
    torch.manual_seed(0)
    blk = DeformableAttention(8, 4, 16, 2)
    assert blk.ref_point14.weight.abs().sum() > 0 and not hasattr(blk, 'grid_logit')
    torch.manual_seed(0)
    grid = DeformableAttention(8, 4, 16, 2, interest_init='grid')
    assert sorted(blk.state_dict()) == sorted(grid.state_dict())


def test_saved_grid_model_reloads_as_grid(tmp_path):
    torch.manual_seed(0)
    model = create_model('eat_micro_hybrid', interest_init='grid', **STUDY).eval()
    with torch.no_grad():  # move the points off the grid so that the grid term matters
        for m in model.modules():
            if isinstance(m, DeformableAttention): m.ref_point14.weight.normal_(0, 0.05)
    save_weights(model, tmp_path / 'm.safetensors')
    again = load_weights(tmp_path / 'm.safetensors').eval()
    assert again.cfg.interest_init == 'grid'
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad(): torch.testing.assert_close(again(x).logits, model(x).logits, atol=1e-6, rtol=0)


def test_bad_interest_init_is_refused():
    with pytest.raises(ValueError, match='interest_init'): create_model('eat_micro', interest_init='zeros')
    with pytest.raises(ValueError, match='interest_init'): DeformableAttention(8, 4, 16, 2, interest_init='zeros')
