"""Speech quality metrics for zoo:storm: SI-SDR (own implementation, no dependency) and thin wrappers
around the optional `pesq` (wide-band PESQ) and `pystoi` (ESTOI) packages used by the benchmarks.
"""

from __future__ import annotations

import numpy as np


def si_sdr(reference: np.ndarray, estimate: np.ndarray, zero_mean: bool = True) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., ICASSP 2019).

    s = α·r with α = ⟨e, r⟩/‖r‖² (the projection of the estimate on the reference), e_res = e − s,
    SI-SDR = 10·log10(‖s‖² / ‖e_res‖²). Both signals are mean-removed first when `zero_mean`.
    """
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    e = np.asarray(estimate, dtype=np.float64).reshape(-1)
    if r.shape != e.shape:
        raise ValueError(f"si_sdr: shapes differ: {r.shape} vs {e.shape}")
    if zero_mean:
        r, e = r - r.mean(), e - e.mean()
    eps = 1e-20  # keeps identical signals finite (≈ 200 dB) without biasing real ones
    alpha = np.dot(e, r) / (np.dot(r, r) + eps)
    target = alpha * r
    residual = e - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(residual, residual) + eps)))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, rate: int = 16000) -> float:
    """Wide-band PESQ (ITU-T P.862.2) via the `pesq` package."""
    from pesq import pesq

    return float(pesq(rate, np.asarray(reference, np.float64), np.asarray(estimate, np.float64), "wb"))


def estoi(reference: np.ndarray, estimate: np.ndarray, rate: int = 16000) -> float:
    """Extended STOI (Jensen & Taal 2016) via the `pystoi` package."""
    from pystoi import stoi

    return float(stoi(np.asarray(reference, np.float64), np.asarray(estimate, np.float64), rate, extended=True))
