"""Build the original EAT code's model (the authors' repository, checked out OUTSIDE this project) for benchmarks.

The original repository (github.com/woshidandan/Image-Aesthetics-and-Quality-Assessment, Apache-2.0) is never
copied into this project: `load_original(PATH)` imports its `AVA/models` package from the checkout as it is and
builds the model from its own YAML config. Its code needs `einops` (pip install einops) and timm's old
`timm.models.layers` names, which are mapped onto `timm.layers` at import time when a newer timm lacks them.

    git clone https://github.com/woshidandan/Image-Aesthetics-and-Quality-Assessment /somewhere/orig_eat
    python benchmarks/bench.py --original /somewhere/orig_eat
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings
from pathlib import Path

import torch.nn as nn
import yaml


def _shim_timm_layers():
    "Make `from timm.models.layers import DropPath, to_2tuple, trunc_normal_` work on any timm >= 0.9."
    import timm.layers
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # timm 1.x: "Importing from timm.models.layers is deprecated"
            mod = importlib.import_module("timm.models.layers")
        if all(hasattr(mod, n) for n in ("DropPath", "to_2tuple", "trunc_normal_")): return
    except ImportError:
        pass
    shim = types.ModuleType("timm.models.layers")
    shim.__dict__.update({k: getattr(timm.layers, k) for k in dir(timm.layers) if not k.startswith("__")})
    sys.modules["timm.models.layers"] = shim


class OriginalEAT(nn.Module):
    "The original DAT/EAT model, returning only its logits (it also returns sampling positions and references)."
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)[0]


def load_original(path: str | Path,  # the checkout (its root, or its AVA folder)
                  config: str = "configs/dat_tiny.yaml",  # the original YAML config, relative to AVA/
                  num_classes: int = 10,  # head size (the AVA code's 10 bins)
                  **overrides,  # other keys of the config's MODEL.DAT, e.g. img_size=64, window_sizes=[4, 4, 4, 2]
                  ) -> OriginalEAT:
    "The original code's EAT model (EAT-T by default), built from its own model files and config, untrained."
    root = Path(path).expanduser()
    ava = root / "AVA" if (root / "AVA").is_dir() else root
    models = ava / "models"
    if not (models / "dat_blocks.py").is_file():
        raise FileNotFoundError(f"{str(root)!r} is not a checkout of the original EAT repository: no "
                                f"AVA/models/dat_blocks.py in it. Clone github.com/woshidandan/"
                                f"Image-Aesthetics-and-Quality-Assessment outside this project and pass its path.")
    try:
        import einops  # noqa: F401
    except ImportError as e:
        raise ImportError("The original EAT code needs einops: pip install einops") from e
    _shim_timm_layers()
    name = "eat_original_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, models / "__init__.py",
                                                      submodule_search_locations=[str(models)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    dat = importlib.import_module(f"{name}.dat")
    cfg_path = ava / config
    if not cfg_path.is_file(): raise FileNotFoundError(f"No original config at {str(cfg_path)!r}.")
    kw = dict(yaml.safe_load(cfg_path.read_text())["MODEL"]["DAT"])
    kw.update(num_classes=num_classes, **overrides)
    return OriginalEAT(dat.DAT(**kw))
