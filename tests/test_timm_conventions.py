"""timm's conventions on the EAT/DAT variants: timm's own test functions (tests/test_models.py of the installed timm's
source release, fetched from PyPI once into .cache/timm-tests/), run as they are on the variants, with the list of
those left out and why; then the project's own checks that timm's tests do not make."""
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path

import pytest
import timm
import torch
from filelock import FileLock

from eat.model import EAT, EATOutput, VARIANTS, create_model

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / '.cache' / 'timm-tests'
MICRO = [n for n in sorted(VARIANTS) if 'micro' in n]  # eat_micro, eat_micro_hybrid, dat_micro, dat_micro_hybrid
TINY = ['eat_tiny', 'dat_tiny']  # the smallest paper-size variants, for the light functions

# timm's test functions run on the variants: name -> (arguments after model_name, variants). Functions of timm's
# suite take the variants from list_models(); the heavy ones run on the micro variants only (CI's time budget), the
# light ones on the tiny variants too. `cfg_device` is timm's fixture value: 'meta' where torch has device contexts.
CFG_DEVICE = object()
RUN = {
    'test_model_forward': ((1,), MICRO + TINY),
    'test_model_backward': ((2,), MICRO),
    'test_model_default_cfgs': ((1, CFG_DEVICE), MICRO + TINY),
    'test_model_forward_features': ((1,), MICRO + TINY),
    'test_model_forward_fx': ((1,), MICRO),
    'test_model_backward_fx': ((2,), MICRO),
    # timm's forward_intermediates tests select models by module (FEAT_INTER_FILTERS); they apply to these as well
    'test_model_forward_intermediates_features': ((1,), MICRO),
    'test_model_forward_intermediates': ((1,), MICRO),
    'test_prune_intermediate_layers_contract': ((), MICRO),
    'test_prune_intermediate_layers_params_used': ((), MICRO),
    'test_forward_intermediates_stop_early_final_norm': (({},), MICRO),
    'test_features_only_feature_cls_class': ((), MICRO[:1]),
}

_TORCHSCRIPT = "TorchScript is not supported (docs/differences.md): EAT.__prepare_scriptable__ refuses torch.jit.script"
_FIXED_SIZE = "feeds inputs of a fixed small size (64-128 px); the variants take their img_size only (fixed_input_size)"
EXCLUDED = {  # timm's test functions left out, and why (the first four would select the variants in timm's own run)
    'test_model_forward_torchscript': _TORCHSCRIPT,
    'test_model_forward_fx_torchscript': _TORCHSCRIPT + ' (the FX graph calls the same functions)',
    'test_model_forward_torchscript_with_features_fx': _TORCHSCRIPT,
    'test_pruned_features_torchscript': _TORCHSCRIPT,
    'test_feature_getter_stage_ends_torchscript': _TORCHSCRIPT,
    'test_model_inference': "compares with reference tensors of timm's own Hub weights; no EAT weights are published",
    'test_model_load_pretrained': "no weights are downloadable for the variants (model folders load with local-dir:)",
    'test_model_features_pretrained': "no weights are downloadable for the variants",
    'test_model_default_cfgs_non_std': "for timm's NON_STD_FILTERS models; the variants pass test_model_default_cfgs",
    'test_reset_classifier_keeps_pool': "asks for global_pool='max'; the variants pool by 'avg' or not at all ('')",
    'test_catavgmax_unsupported': "expects AssertionError; the variants refuse other pools with a ValueError",
    'test_model_features_output_stride': "output_stride (dilated stages) is not an option of DAT's layout",
    'test_head_hidden_size': _FIXED_SIZE,
    'test_features_only_grad_checkpointing_backward': _FIXED_SIZE,
    'test_forward_after_prune_intermediate_layers': _FIXED_SIZE,
    'test_prune_intermediate_layers_last_feature': _FIXED_SIZE,
    'test_prune_to_stem_feature': _FIXED_SIZE + '; the first feature is stage 1, not a stem',
    'test_model_init_weights_after_to_empty': "feeds 64 px images and needs init_weights(), which EAT does not have",
}


def _fetch_test_models() -> Path:
    "timm's tests/test_models.py for the installed timm: $EAT_TIMM_TESTS, or fetched with pip from timm's sdist once."
    if os.environ.get('EAT_TIMM_TESTS'): return Path(os.environ['EAT_TIMM_TESTS'])
    v = timm.__version__
    dest = CACHE / f'timm-{v}' / 'test_models.py'
    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CACHE / 'fetch.lock')):  # pytest-xdist workers fetch once between them
        if dest.is_file(): return dest
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, '-m', 'pip', 'download', f'timm=={v}', '--no-binary', ':all:', '--no-deps', '-q',
                   '-d', tmp]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            sdists = list(Path(tmp).glob(f'timm-{v}.tar.gz'))
            if r.returncode or not sdists:
                pytest.fail(f"Could not download timm {v}'s source release, which holds its tests ({' '.join(cmd)} "
                            f"exited {r.returncode}): {r.stderr.strip()[-1000:]}\nWithout the network, put its "
                            f"tests/test_models.py at {dest} or point EAT_TIMM_TESTS at it.", pytrace=False)
            with tarfile.open(sdists[0]) as tar: text = tar.extractfile(f'timm-{v}/tests/test_models.py').read()
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix('.part')
        part.write_bytes(text)
        part.replace(dest)
    return dest


@pytest.fixture(scope='module')
def suite():
    "timm's test module, imported after eat.model registered the variants (as timm's own run would see them)."
    path = _fetch_test_models()
    spec = importlib.util.spec_from_file_location('timm_test_models', path)
    mod = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', pytest.PytestUnknownMarkWarning)  # timm's own marks (fxforward, cfg, ...)
        spec.loader.exec_module(mod)
    return mod


def _selected(fn) -> set:
    "The variants a timm test function's own parametrisation would run it on."
    names = set()
    for mark in getattr(fn, 'pytestmark', []):
        if mark.name == 'parametrize' and 'model_name' in mark.args[0]:
            names |= {v[0] if isinstance(v, (tuple, list)) else v for v in mark.args[1]}
    return names & set(VARIANTS)


def test_every_timm_test_that_selects_the_variants_runs_or_says_why(suite):
    fns = {n: getattr(suite, n) for n in dir(suite) if n.startswith('test_') and callable(getattr(suite, n))}
    assert not (missing := sorted(set(RUN) - set(fns))), f"timm {timm.__version__} has no {missing}: update RUN"
    selecting = {n for n, fn in fns.items() if _selected(fn)}
    assert selecting, "timm's suite selects none of the variants: were they registered before it was imported?"
    assert not (unlisted := sorted(selecting - set(RUN) - set(EXCLUDED))), \
        f"timm's suite runs {unlisted} on the variants: add them to RUN, or to EXCLUDED with the reason"
    assert not (set(RUN) & set(EXCLUDED))


@pytest.mark.parametrize('fn_name,name', [(f, n) for f, (_, names) in RUN.items() for n in names])
def test_timm(suite, fn_name, name):
    "One of timm's test functions, unchanged, on one variant; a skip inside it (timm's size limits) fails here."
    args, _ = RUN[fn_name]
    device = 'meta' if suite._HAS_DEVICE_CONTEXT else suite.torch_device  # timm's cfg_device fixture
    args = tuple(device if a is CFG_DEVICE else a for a in args)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # torchvision's note on train/eval node names
        try: getattr(suite, fn_name)(name, *args)
        except pytest.skip.Exception as e:
            pytest.fail(f"timm's {fn_name} skipped {name} ({e}): run it on variants within its limits", pytrace=False)


# --- the project's own checks -------------------------------------------------------------------------------------

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


@pytest.mark.parametrize('name', MICRO[:2])
def test_head_and_classifier_reset_on_real_tensors(name):
    "timm's cfg test runs on the meta device; the head's numbers and a new head's shape, on real tensors."
    model = timm.create_model(name).eval()
    x = _input(model)
    with torch.no_grad():
        feats = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        model.reset_classifier(5, 'avg')
        assert model(x).shape == (1, 5)
    assert model.get_classifier() is model.cls_head


def test_reset_classifier_names_the_argument_order():
    model = create_model('eat_micro')
    with pytest.raises(ValueError, match="head='score'"): model.reset_classifier(1, 'score')
    model.reset_classifier(1, head='score')
    assert model.cfg.head_kind == 'score' and model.cfg.global_pool == 'avg'


@pytest.mark.parametrize('name', MICRO)
def test_fx_features_are_the_eager_intermediates(name):
    """timm's `feature_cls='fx'` and torchvision's own `create_feature_extractor` (no timm tracer settings) give
    exactly the eager stage outputs (channels-last, as `output_fmt`)."""
    from torchvision.models.feature_extraction import create_feature_extractor
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # torchvision's note on train/eval node names
        torch.manual_seed(0)
        fx = timm.create_model(name, features_only=True, feature_cls='fx', out_indices=(1, 3)).eval()
        torch.manual_seed(0)
        model = timm.create_model(name).eval()
        tv = create_feature_extractor(model, {'stages.2': 'stage3', 'cls_norm': 'final'})
    x = _input(model, batch=2)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, output_fmt='NHWC')
        assert fx.feature_info.channels() == [inter[1].shape[-1], inter[3].shape[-1]]
        assert all(torch.equal(a, b) for a, b in zip(fx(x), [inter[1], inter[3]]))
        out = tv(x)
        assert torch.equal(out['stage3'], inter[2]) and torch.equal(out['final'], final)
        with pytest.raises(ValueError, match='B x 3 x 224 x 224'): tv(torch.randn(1, 3, 256, 256))  # traced check


@pytest.mark.filterwarnings('ignore:`torch.jit.script` is deprecated')
def test_torchscript_says_it_is_unsupported():
    with pytest.raises(RuntimeError, match='docs/differences.md'): torch.jit.script(create_model('eat_micro'))


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
