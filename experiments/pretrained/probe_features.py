"""Ridge probe: how well a backbone's pooled stage features predict the synthetic score and each generator factor.

    python experiments/pretrained/probe_features.py --weights experiments/pretrained/dat_micro_hybrid_scenes128.safetensors \
        --data DIR_OF_eat-synth_--seed_0_--size_128 --n 2000

Prints, per target, the SRCC of 5-fold cross-validated ridge predictions (all four stages' mean-pooled features).
`--weights ''` probes the randomly initialised network.
"""
import argparse, json

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy.stats import spearmanr

from eat.images import IMAGENET_MEAN, IMAGENET_STD
from eat.model import create_model
from eat.weights import init_from

TARGETS = ['latent_score', 'q_fg', 'q_bg', 'f_thirds', 'f_sharp', 'f_exposure', 'b_bokeh', 'b_clutter', 'b_tilt', 'b_harmony']


def features(weights: str, root: str, ids) -> np.ndarray:
    "Mean-pooled outputs of the four stages (last one normalised) for the images `ids` of an eat-synth folder."
    model = create_model('dat_micro_hybrid', img_size=128, window_sizes=[4, 4, 4, 2], drop_path_rate=0.0, num_classes=10)
    if weights: init_from(model, weights, False)
    m, s = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(ids), 50):
            x = torch.stack([torch.from_numpy(np.array(Image.open(f'{root}/images/{j}.jpg').convert('RGB'))).permute(2, 0, 1)
                             for j in ids[i:i + 50]]).float() / 255
            _, inter = model.eval().forward_intermediates((x - m) / s, norm=True)
            out.append(torch.cat([t.mean((2, 3)) for t in inter], 1).numpy())
    return np.concatenate(out)


def cv_ridge(x: np.ndarray, y: np.ndarray, folds: int = 5, lam: float = 10.0) -> np.ndarray:
    "Out-of-fold ridge predictions (standardised features, penalty lam * n / 100)."
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    idx, p = np.arange(len(y)) % folds, np.zeros(len(y))
    for f in range(folds):
        tr, te = idx != f, idx == f
        a, mu = x[tr], y[tr].mean()
        w = np.linalg.solve(a.T @ a + lam * len(a) / 100 * np.eye(a.shape[1]), a.T @ (y[tr] - mu))
        p[te] = x[te] @ w + mu
    return p


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--weights', required=True, help="own .safetensors ('' for a random init)")
    ap.add_argument('--data', required=True, help='an eat-synth folder at 128 px (images/ and factors.csv)')
    ap.add_argument('--n', type=int, default=2000, help='images (the first n)')
    a = ap.parse_args()
    torch.set_num_threads(1)
    fac = pd.read_csv(f'{a.data}/factors.csv').iloc[:a.n]
    x = features(a.weights, a.data, list(fac.image_id))
    print(json.dumps({k: round(float(spearmanr(cv_ridge(x, fac[k].to_numpy()), fac[k]).statistic), 3) for k in TARGETS}))
