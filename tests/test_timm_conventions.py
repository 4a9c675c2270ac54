"""timm's model conventions (the checks of timm's own tests/test_models.py, re-written) on the small EAT/DAT variants."""
import pytest
import timm
import torch

from eat.model import EAT, EATOutput, VARIANTS, create_model

MICRO = [n for n in sorted(VARIANTS) if 'micro' in n]  # eat_micro, eat_micro_hybrid, dat_micro, dat_micro_hybrid


def _input(model, batch=1):
    return torch.randn(batch, *model.default_cfg['input_size'])


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_registry_cfg_has_timm_keys(name):
    cfg = timm.get_pretrained_cfg(name).to_dict()
    v = VARIANTS[name]
    assert cfg['architecture'] == name
    assert cfg['input_size'] == (3, v.img_size, v.img_size) and cfg['fixed_input_size']
    assert cfg['pool_size'] == (v.img_size // 32,) * 2
    assert (cfg['classifier'], cfg['first_conv'], cfg['num_classes']) == ('cls_head', 'patch_proj.0', 10)
    assert cfg['mean'] == (0.485, 0.456, 0.406) and cfg['std'] == (0.229, 0.224, 0.225)


@pytest.mark.parametrize('name', MICRO)
def test_forward_returns_a_tensor(name):
    model = timm.create_model(name).eval()
    with torch.no_grad(): out = model(_input(model))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 10) and not torch.isnan(out).any()


@pytest.mark.parametrize('name', MICRO)
def test_backward_reaches_every_parameter(name):
    model = timm.create_model(name, num_classes=42).train()
    n_params = sum(p.numel() for p in model.parameters())
    out = model(_input(model, batch=2))
    out.mean().backward()
    assert out.shape == (2, 42) and not torch.isnan(out).any()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert sum(p.grad.numel() for p in model.parameters()) == n_params


@pytest.mark.parametrize('name', MICRO)
def test_default_cfg_features_and_classifier_reset(name):
    model = timm.create_model(name).eval()
    cfg, sd, x = model.default_cfg, model.state_dict(), _input(model)
    assert model.output_fmt == 'NHWC'
    with torch.no_grad():
        feats = model.forward_features(x)  # unpooled, channels last
        assert feats.shape == (1, *cfg['pool_size'], model.num_features)
        assert model.forward_head(feats, pre_logits=True).shape == (1, model.num_features)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        model.reset_classifier(0)  # no head: pooled features
        out = model(x)
        assert out.shape == (1, model.num_features) and model.num_classes == 0
        model.reset_classifier(0, '')  # no head, no pooling: the unpooled map
        out = model(x)
        assert out.ndim == 4 and out.shape == feats.shape
        model.reset_classifier(5, 'avg')
        assert model(x).shape == (1, 5)
    assert cfg['classifier'] + '.weight' in sd and cfg['first_conv'] + '.weight' in sd
    assert model.get_classifier() is model.cls_head


def test_reset_classifier_names_the_argument_order():
    model = create_model('eat_micro')
    with pytest.raises(ValueError, match="head='score'"): model.reset_classifier(1, 'score')
    model.reset_classifier(1, head='score')
    assert model.cfg.head_kind == 'score' and model.cfg.global_pool == 'avg'


@pytest.mark.parametrize('name', MICRO)
def test_features_only(name):
    model = timm.create_model(name, features_only=True).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) == 4 and reductions == [4, 8, 16, 32]
    x = _input(model)
    with torch.no_grad(): outs = model(x)
    assert len(outs) == len(channels)
    for c, r, o in zip(channels, reductions, outs):
        assert o.shape == (1, c, x.shape[2] // r, x.shape[3] // r) and not torch.isnan(o).any()
    sub = timm.create_model(name, features_only=True, out_indices=(1, 3)).eval()
    assert sub.feature_info.channels() == [channels[1], channels[3]]


@pytest.mark.parametrize('name', MICRO[:2])
def test_forward_intermediates_agree_with_forward_features(name):
    model = timm.create_model(name).eval()
    x = _input(model)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        assert [t.shape[1] for t in inter] == [i['num_chs'] for i in model.feature_info]
        nhwc = model.forward_intermediates(x, indices=1, output_fmt='NHWC', intermediates_only=True)
        torch.testing.assert_close(nhwc[0], inter[-1].permute(0, 2, 3, 1))
        early = model.forward_intermediates(x, indices=[0], stop_early=True, intermediates_only=True)
        torch.testing.assert_close(early[0], inter[0])


@pytest.mark.parametrize('name', MICRO[:2])
@pytest.mark.parametrize('in_chans', [1, 4])
def test_in_chans(name, in_chans):
    model = timm.create_model(name, in_chans=in_chans).eval()
    assert model.in_chans == in_chans and model.patch_proj[0].in_channels == in_chans
    with torch.no_grad(): out = model(torch.randn(2, in_chans, 224, 224))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=f"B x {in_chans} x 224 x 224"): model(torch.randn(1, 3, 224, 224))


def test_eat_callers_keep_eat_output():
    """eat's own constructors return EATOutput (trainer, scorer, explain read .score/.dist/.positions); timm's do
    when asked with output='eat'."""
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours = create_model('eat_micro').eval()(x)
        via_timm = timm.create_model('eat_micro', output='eat').eval()(x)
    for out in (ours, via_timm):
        assert isinstance(out, EATOutput) and out.score.shape == (1,) and len(out.positions) == 3
    assert isinstance(timm.create_model('eat_micro'), EAT)
