"""An original EAT/DAT checkpoint with its YAML, as the original code writes them, for the tests of its loaders."""
from pathlib import Path

import torch
import yaml

from eat.model import EAT, create_model

# the MODEL.DAT keys of the original code's YAML
KEYS = ['img_size', 'dim_stem', 'dims', 'depths', 'stage_spec', 'heads', 'window_sizes', 'groups', 'use_pes', 'dwc_pes',
        'strides', 'sr_ratios', 'offset_range_factor', 'no_offs', 'fixed_pes', 'use_dwc_mlps', 'use_conv_patches',
        'drop_path_rate']


def write_original(root: Path, **overrides) -> tuple[Path, Path]:
    "dat_micro (with `overrides`) in the original code's layout: `root/orig.yaml` and `root/orig.pth` (seed 1 weights)."
    dat = create_model('dat_micro', **overrides)
    (root / 'orig.yaml').write_text(yaml.safe_dump(
        {'MODEL': {'TYPE': 'dat', 'DAT': {**{k: getattr(dat.cfg, k) for k in KEYS}, 'num_classes': 10}}}))
    torch.manual_seed(1)
    original = EAT.from_official(root / 'orig.yaml', verbose=False)  # what the original code builds, trained elsewhere
    torch.save({'model': original.state_dict(), 'epoch': 300}, root / 'orig.pth')
    return root / 'orig.yaml', root / 'orig.pth'
