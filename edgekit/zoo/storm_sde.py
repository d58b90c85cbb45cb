"""The OUVE SDE of StoRM / SGMSE+ (Richter et al. 2023; Lemercier et al. 2023), as tensor functions that
both training (benchmarks/train_storm.py) and the in-graph sampler (storm.py) use.

    dx = γ·(μ − x)·dt + g(t)·dw,   g(t) = σ(t)·√(2·ln(σmax/σmin)),   σ(t) = σmin·(σmax/σmin)^t

with μ = D(y) (StoRM: the predictive model's estimate). Marginal: mean e^{−γt}·x0 + (1 − e^{−γt})·μ,

    std(t)² = σmin²·L·(e^{2(γ+L)t} − 1)·e^{−2γt} / (γ + L),   L = ln(σmax/σmin)

(sgmse's OUVESDE._std). The prior is x_T = μ + std(T)·z — the OUVE marginal std at T, not σ(T).
"""

from __future__ import annotations

import math

import torch

GAMMA = 1.5
SIGMA_MIN = 0.05
SIGMA_MAX = 0.5
T_MAX = 1.0
T_EPS = 0.03
SNR = 0.5  # annealed Langevin corrector's target signal-to-noise ratio r
LOG_RATIO = math.log(SIGMA_MAX / SIGMA_MIN)


def sigma(t: torch.Tensor) -> torch.Tensor:
    return SIGMA_MIN * torch.exp(t * LOG_RATIO)


def diffusion(t: torch.Tensor) -> torch.Tensor:
    """g(t) = σ(t)·√(2L)."""
    return sigma(t) * math.sqrt(2.0 * LOG_RATIO)


def marginal_std(t: torch.Tensor) -> torch.Tensor:
    rate = GAMMA + LOG_RATIO
    var = SIGMA_MIN**2 * LOG_RATIO * (torch.exp(2.0 * rate * t) - 1.0) * torch.exp(-2.0 * GAMMA * t) / rate
    return torch.sqrt(var)


def marginal_mean(x0: torch.Tensor, mu: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """e^{−γt}·x0 + (1 − e^{−γt})·μ; `t` broadcasts over [B, 1, 1, 1]."""
    decay = torch.exp(-GAMMA * t)
    return decay * x0 + (1.0 - decay) * mu


def prior_std() -> float:
    return float(marginal_std(torch.tensor(T_MAX)))
