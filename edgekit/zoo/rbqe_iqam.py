"""IQAM: RBQE's no-reference quality score for compressed images (Xing et al., ECCV 2020).

It decides, inside the exported graph, whether an exit's output is good enough to stop. Everything is
written as batched torch ops with masked means (no Python branching on data), so it traces into one
static graph that `torch.export` / `torch.onnx.export(dynamo=True)` keep as plain ONNX ops.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

SMOOTH_THRESHOLD = 0.004  # Σ non-DC moment energy at or below this: a smooth patch
Q_CLIP = 0.05  # blockiness ratio clip (and the log base of the blockiness score)
SSIM_C = 1e-5  # stability constant of the moment similarity
MOMENT_FLOOR = 1e-6  # normalised moments below this are float32 rounding noise (a 1/255 step gives ~5e-4)
BLOCK_WEIGHT, BLUR_WEIGHT = 0.9, 0.1
PATCH_SIZE = {"jpeg": 8, "hevc": 4}  # codec block size: JPEG 8×8 DCT, HEVC down to 4×4 TUs
# Robust IQAM (issue #19 §2): a patch whose AC part (pixels minus their mean) has an RMS below one 8-bit step
# is smooth-and-clean whatever its pattern. The paper normalises every patch, so on such a patch rounding
# or int8 noise (~2e-3 per pixel on RBQE's outputs) decides the blockiness score on its own.
QUIET_RMS = 1.0 / 255


def tchebichef_basis(n: int) -> np.ndarray:
    """Orthonormal discrete Tchebichef basis, shape (n, n): row k is the degree-k polynomial on x = 0..n-1.

    Built by QR (Gram–Schmidt) of the monomials x^k over the discrete points, which yields the
    orthonormal discrete Tchebichef polynomials up to sign; the sign is fixed so P[k, n-1] > 0.
    """
    x = np.arange(n, dtype=np.float64)
    x = (x - x.mean()) / max(1.0, x.std())  # centred and scaled monomials keep QR well conditioned
    vander = np.stack([x**k for k in range(n)], axis=1)  # (points, degree)
    q, _ = np.linalg.qr(vander)
    basis = q.T
    basis *= np.sign(basis[:, -1:])
    return basis


def gaussian_kernel(size: int = 3, sigma: float = 5.0) -> np.ndarray:
    """Normalised 2-D Gaussian (MATLAB's fspecial('gaussian', size, sigma))."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def blur_operator(n: int) -> np.ndarray:
    """(n², n²) matrix of the 3×3 Gaussian blur of an n×n patch with zero padding (MATLAB imfilter 'same')."""
    g = gaussian_kernel()
    op = np.zeros((n * n, n * n))
    for idx in range(n * n):
        padded = np.zeros((n + 2, n + 2))
        padded[1 + idx // n, 1 + idx % n] = 1.0
        response = sum(g[a, b] * padded[a : a + n, b : b + n] for a in range(3) for b in range(3))
        op[:, idx] = response.reshape(-1)  # column idx: the blurred image of a unit impulse at idx
    return op


class Iqam(nn.Module):
    """(B, 1, H, W) luma in [0, 1] → (B,) quality scores in [0, 1]; higher is better.

    N×N patches (N = 8 JPEG, 4 HEVC) start at N/2 so codec block borders fall inside them. Each patch is
    L2-normalised and mean-removed and its 2-D Tchebichef moments M = P·patch·Pᵀ are taken. Textured
    patches (Σ non-DC M² > 0.004) score blur: 1 − mean((2·M·Mb + C)/(M² + Mb² + C)), Mb the moments of the
    patch re-blurred by a 3×3 Gaussian (σ = 5, zero padding as MATLAB's imfilter). Smooth patches score
    blockiness from the last moment row/column: Q = Σ|M[N−1,:]| / (Σ|M| − |M00| + C), clipped to 0.05,
    ln(1 − mean(Q_row, Q_col)) / ln(0.95). Score = mean_blockiness^0.9 · mean_blur^0.1; a class with no
    patches contributes 1. H and W must be at least 2N.

    Moments are linear in the patch, so M and Mb come out of one stride-N convolution whose filters are
    the basis images P[u]ᵀP[v] and those images composed with the blur. Normalising divides by the patch
    norm (the norm of its orthonormal moments); mean removal zeroes M00, so only the N² − 1 AC moments
    are kept (channel u·N + v − 1).
    """

    def __init__(self, patch: int = 8, robust: bool = False):
        super().__init__()
        self.patch = patch
        self.robust = robust  # quiet patches (AC RMS < QUIET_RMS) score as clean: blockiness 1, not textured
        basis = tchebichef_basis(patch)
        moments = np.kron(basis, basis)  # row u·N+v: vec(P[u]ᵀ P[v]); moments = kron · vec(patch)
        filters = np.concatenate([moments, moments @ blur_operator(patch)])
        filters = torch.from_numpy(filters.reshape(-1, 1, patch, patch)).float()
        self.register_buffer("filters", filters, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        n, off = self.patch, self.patch // 2
        raw = nn.functional.conv2d(image[:, :, off:, off:], self.filters, stride=n)
        raw = raw.reshape(image.shape[0], 2, n * n, -1)  # (B, patch | re-blurred patch, moment, patch index)
        ac = raw[:, :, 1:] / torch.sqrt(raw.square().sum(2, keepdim=True) + 1e-12)  # eps: all-black patch
        # float32 filters leave ~1e-8 of a flat patch in its AC moments (exact 0 in the float64
        # reference); against C = 1e-5 that noise alone scored flat patches as 0.1 instead of 0.
        ac = torch.where(ac.abs() < MOMENT_FLOOR, torch.zeros_like(ac), ac)
        m, mb = ac[:, 0], ac[:, 1]  # (B, N² − 1, P)

        textured = (m.square().sum(1) > SMOOTH_THRESHOLD).to(image.dtype)
        if self.robust:  # orthonormal moments: Σ AC² is the patch's Σ (pixel − mean)²
            quiet = (raw[:, 0, 1:].square().sum(1) < n * n * QUIET_RMS**2).to(image.dtype)
            textured = textured * (1.0 - quiet)
        similarity = (2 * m * mb + SSIM_C) / (m.square() + mb.square() + SSIM_C)
        blur_score = 1.0 - (similarity.sum(1) + 1.0) / (n * n)  # + 1: the DC term, (0 + C)/(0 + C)

        total = m.abs().sum(1) + SSIM_C
        q_row = (m[:, (n - 1) * n - 1 :].abs().sum(1) / total).clamp(max=Q_CLIP)
        q_col = (m[:, n - 2 :: n].abs().sum(1) / total).clamp(max=Q_CLIP)
        block_score = torch.log(1.0 - 0.5 * (q_row + q_col)) / math.log(1.0 - Q_CLIP)
        if self.robust:
            block_score = block_score * (1.0 - quiet) + quiet  # a quiet patch is a clean one

        blur = _masked_mean(blur_score, textured)
        block = _masked_mean(block_score, 1.0 - textured)
        return block.pow(BLOCK_WEIGHT) * blur.pow(BLUR_WEIGHT)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over `mask` along the patch axis; 1 where the mask is empty."""
    count = mask.sum(-1)
    mean = (values * mask).sum(-1) / count.clamp(min=1.0)
    return torch.where(count > 0, mean, torch.ones_like(mean))
