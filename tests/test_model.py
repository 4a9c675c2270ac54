"""Model behaviour that users and the original checkpoints rely on: parity, batch independence, loading, export."""
import collections
from pathlib import Path

import pytest
import timm
import torch

from eat.checkpoints import filter_official
from eat.model import EAT, VARIANTS, create_model
from eat.weights import load_model, save_weights

# the parity fixture: shared/reference/parity in a folder above the checkout (or inside it)
FIXTURE = next((b / 'shared/reference/parity' for b in Path(__file__).resolve().parents
                if (b / 'shared/reference/parity/expected_dat_micro.pt').is_file()),
               Path(__file__).resolve().parents[2] / 'shared/reference/parity')
needs_fixture = pytest.mark.skipif(not (FIXTURE / 'expected_dat_micro.pt').is_file(),
                                   reason=f'parity fixture not found at {FIXTURE}')


@pytest.fixture(scope='module')
def expected():
    return torch.load(FIXTURE / 'expected_dat_micro.pt', weights_only=True)


@needs_fixture
def test_parity_with_original_batch_mean(expected):
    model = EAT.from_official(FIXTURE / 'dat_micro.yaml', FIXTURE / 'official_dat_micro.pth', reference_pooling='batch')
    assert str(model.load_report) == 'all keys loaded'
    with torch.no_grad():
        out = model(expected['x'])
        single = torch.cat([model(expected['x'][i:i + 1]).logits for i in range(3)])
    assert (out.logits - expected['logits_batch']).abs().max() <= 1e-4
    assert (single - expected['logits_single']).abs().max() <= 1e-4
    assert len(out.positions) == len(expected['pos_batch']) == 3
    for ours, theirs in zip(out.positions + out.references, expected['pos_batch'] + expected['ref_batch']):
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().max() <= 1e-4
    # the original semantics of a 10-way checkpoint: raw outputs, score = sum i * out_i
    torch.testing.assert_close(out.score, expected['logits_batch'] @ torch.arange(1, 11.), atol=1e-3, rtol=0)


@needs_fixture
def test_original_batch_dependence_is_gone_by_default(expected):
    model = EAT.from_official(FIXTURE / 'dat_micro.yaml', FIXTURE / 'official_dat_micro.pth')
    with torch.no_grad():
        together = model(expected['x']).logits
        alone = torch.cat([model(expected['x'][i:i + 1]).logits for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    # while the original's own numbers do depend on the batch
    assert (expected['logits_batch'] - expected['logits_single']).abs().max() > 1e-3


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_every_variant_is_batch_independent_and_finite(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    s = model.cfg.img_size
    x = torch.randn(2, 3, s, s)
    with torch.no_grad():
        out = model(x)
        alone = torch.cat([model(x[i:i + 1]).logits for i in range(2)])
    assert out.logits.shape == (2, 10) and out.dist.shape == (2, 10) and out.score.shape == (2,)
    assert torch.isfinite(out.logits).all()
    torch.testing.assert_close(out.logits, alone, atol=1e-4, rtol=0)
    n_d = sum(t == 'D' for spec in model.cfg.stage_spec for t in spec)
    assert len(out.positions) == len(out.references) == n_d


@pytest.mark.parametrize('name', ['eat_micro', 'eat_micro_hybrid', 'dat_micro'])
def test_backward_reaches_offsets_and_interest_points(name):
    model = create_model(name).train()
    model(torch.randn(2, 3, 224, 224)).logits.square().mean().backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert any('conv_offset' in k and g.abs().sum() > 0 for k, g in grads.items())
    if model.cfg.interest_points:
        assert any('ref_point14' in k and g.abs().sum() > 0 for k, g in grads.items())
    else:
        assert not any('ref_point14' in k for k in grads)


def test_damping_one_and_uniform_grid_reduce_to_plain_dat():
    torch.manual_seed(0)
    dat = create_model('dat_micro').eval()
    eat_like = create_model('eat_micro', interest_points=False, damping=1.0).eval()
    eat_like.load_state_dict(dat.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(eat_like(x).logits, dat(x).logits, atol=0, rtol=0)
    # and exploitation (rule off) is the same as damping 1.0
    ruled = create_model('eat_micro', interest_points=False).eval()
    ruled.load_state_dict(dat.state_dict())
    ruled.set_exploration(False)
    with torch.no_grad():
        torch.testing.assert_close(ruled(x).logits, dat(x).logits, atol=0, rtol=0)


def test_timm_registry():
    model = timm.create_model('eat_tiny', num_classes=10)
    assert isinstance(model, EAT) and model.cfg.num_classes == 10
    assert timm.create_model('eat_micro', num_classes=1).cfg.head_kind == 'score'
    with pytest.raises(ValueError, match='from_official'):
        timm.create_model('eat_tiny', pretrained=True)


def test_export_eat_tiny_has_no_host_syncs():
    model = create_model('eat_tiny').eval()
    x = torch.randn(1, 3, 224, 224)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x).score, model(x).score, atol=1e-5, rtol=0)


def _fake_dat_in1k_checkpoint(path):
    """A checkpoint shaped like DAT v1's ImageNet ones: 1000-way head, no ref_point14, derived buffers included."""
    dat = create_model('dat_micro', num_classes=1000)
    sd = dat.state_dict()
    for name, mod in dat.named_modules():
        if hasattr(mod, 'relative_position_index'): sd[f'{name}.relative_position_index'] = mod.relative_position_index
        if hasattr(mod, 'attn_mask'): sd[f'{name}.attn_mask'] = mod.attn_mask
    torch.save({'model': sd, 'epoch': 300}, path)
    return sd


_ORIGINAL_KEYS = ['img_size', 'patch_size', 'num_classes', 'expansion', 'dim_stem', 'dims', 'depths', 'stage_spec',
                  'heads', 'window_sizes', 'groups', 'use_pes', 'dwc_pes', 'strides', 'sr_ratios',
                  'offset_range_factor', 'no_offs', 'fixed_pes', 'use_dwc_mlps', 'use_conv_patches', 'drop_rate',
                  'attn_drop_rate', 'drop_path_rate']

def _original_yaml(path):
    """The micro model's config in the original code's YAML format (MODEL.DAT), so these tests need no fixture."""
    import yaml
    c = VARIANTS['dat_micro']
    dat = {k: getattr(c, k) for k in _ORIGINAL_KEYS}
    path.write_text(yaml.safe_dump({'MODEL': {'TYPE': 'dat', 'NAME': 'dat_micro', 'DAT': {**dat, 'num_classes': 10}}}))
    return path


@needs_fixture
def test_original_yaml_matches_the_fixture(tmp_path):
    from eat.model import read_official_config
    assert read_official_config(_original_yaml(tmp_path / 'c.yaml')) == read_official_config(FIXTURE / 'dat_micro.yaml')


def test_load_dat_imagenet_checkpoint_reports_every_key(tmp_path):
    sd = _fake_dat_in1k_checkpoint(tmp_path / 'dat_micro_in1k_224.pth')
    model = EAT.from_official(_original_yaml(tmp_path / 'c.yaml'), tmp_path / 'dat_micro_in1k_224.pth', verbose=False)
    rep = model.load_report
    assert sorted(rep.missing) == sorted(k for k in model.state_dict() if 'ref_point14' in k)
    assert any(d.startswith('cls_head.weight') for d in rep.dropped)
    assert rep.unexpected == [] and rep.resized == []
    torch.testing.assert_close(model.state_dict()['stages.2.attns.1.proj_q.weight'],
                               sd['stages.2.attns.1.proj_q.weight'])


def test_load_at_another_image_size_resizes_position_tables(tmp_path):
    _fake_dat_in1k_checkpoint(tmp_path / 'in1k.pth')
    model = EAT.from_official(_original_yaml(tmp_path / 'c.yaml'), tmp_path / 'in1k.pth', verbose=False,
                              img_size=448, window_sizes=[14, 14, 14, 14])
    resized = ' '.join(model.load_report.resized)
    assert 'relative_position_bias_table (169, 1) -> (729, 1)' in resized
    assert 'stages.2.attns.1.rpe_table (4, 27, 27) -> (4, 55, 55)' in resized
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 448, 448)).logits).all()


class _Evil(collections.OrderedDict):
    pass


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'model': _Evil(a=torch.zeros(1))}, path)
    with pytest.raises(ValueError, match='Refusing to load'):
        EAT.from_official(_original_yaml(tmp_path / 'c.yaml'), path)


def test_config_mismatch_names_the_key(tmp_path):
    torch.save({'model': create_model('eat_tiny').state_dict()}, tmp_path / 'tiny.pth')
    with pytest.raises(ValueError, match='has shape'):
        EAT.from_official(_original_yaml(tmp_path / 'c.yaml'), tmp_path / 'tiny.pth')


def test_wrong_input_size_is_a_clear_error():
    model = create_model('eat_micro').eval()
    with pytest.raises(ValueError, match='img_size'):
        model(torch.randn(1, 3, 256, 256))
    with pytest.raises(ValueError, match='B x 3 x 224 x 224'):
        model(torch.randn(3, 224, 224))


def test_unknown_options_are_named():
    with pytest.raises(TypeError, match='dimz'):
        EAT(dimz=[1, 2, 3, 4])
    with pytest.raises(ValueError, match='reference_pooling'):
        create_model('eat_micro', reference_pooling='mean')


def test_own_weights_round_trip_through_load_model(tmp_path):
    model = create_model('eat_micro_hybrid').eval()
    path = save_weights(model, tmp_path / 'best.safetensors')
    again = load_model(path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)
    assert not list(tmp_path.glob('*.tmp'))  # atomic writes leave no temporary files
