"""zoo:storm's training loss and data, shared by the from-scratch trainer (benchmarks/train_storm.py) and
the recovery training between pruning steps (edgekit.pruning.recipes.StormRecovery).

Joint loss (StoRM §III-C): 0.5·MSE(D(y), x) + 0.5·DSM, where DSM = mean |s(x_t, [y, D(y)], t)·std(t) + z|²,
x_t = mean_t(x, D(y)) + std(t)·z, t ~ U(t_eps, 1). D(y) is detached inside the DSM term (our choice: the
predictive model learns from its own MSE only, which is more stable in a short run).
"""

from __future__ import annotations

import numpy as np
import torch

from edgekit.zoo import storm_audio as audio
from edgekit.zoo import storm_data as data
from edgekit.zoo import storm_sde as sde


def batch(rng: np.random.Generator, size: int, frames: int, beta: float):
    """(clean, noisy) compressed spectra [B, 2, 256, frames] of training mixtures, both scaled by the
    noisy peak."""
    length = (frames - 1) * audio.HOP
    xs, ys = [], []
    for _ in range(size):
        m = data.random_mixture("train", rng, length)
        norm = max(1e-6, float(np.abs(m.noisy).max()))
        xs.append(audio.to_channels(audio.compress(audio.stft(torch.from_numpy(m.clean / norm)), beta)))
        ys.append(audio.to_channels(audio.compress(audio.stft(torch.from_numpy(m.noisy / norm)), beta)))
    return torch.cat(xs), torch.cat(ys)


def joint_loss(model, x: torch.Tensor, y: torch.Tensor):
    """(0.5·MSE + 0.5·DSM, MSE, DSM) of a StoRM `model` on clean `x` and noisy `y`; t and z are drawn from
    torch's global generator."""
    dy = model.predict(y)
    sup = torch.mean((dy - x) ** 2)
    mu = dy.detach()
    t = torch.rand(x.shape[0]) * (sde.T_MAX - sde.T_EPS) + sde.T_EPS
    std = sde.marginal_std(t)[:, None, None, None]
    z = torch.randn_like(x)
    xt = sde.marginal_mean(x, mu, t[:, None, None, None]) + std * z
    dsm = torch.mean((model.score(xt, y, mu, t) * std + z) ** 2)
    return 0.5 * sup + 0.5 * dsm, sup, dsm
