"""StoRM's STFT front end, which runs OUTSIDE the exported graph (the graph sees compressed spectra).

The math, for a C++ (or any) reimplementation — all float32:

1. Normalise: ``norm = max(|y[n]|)`` over the noisy waveform; ``y ← y / norm`` (norm = 1 if y ≡ 0).
2. STFT: 16 kHz, ``n_fft = 510`` (F = 256 bins), ``hop = 128``, window = periodic Hann of length 510,
   ``w[n] = 0.5 − 0.5·cos(2πn/510)``; centred: the signal is reflect-padded by 255 samples on each side
   (``x[-k] = x[k]``), frame m covers padded samples [128·m, 128·m + 510), so ``frames = 1 + L // 128``.
   ``X[k, m] = Σ_n w[n]·x_pad[128·m + n]·e^{−2πi·k·n/510}``, k = 0..255 (no 1/N scaling).
3. Compress: ``C = β·|X|^α·e^{i∠X}`` with α = 0.5, β = 0.15 (sgmse's "exponent" transform).
4. Layout: real and imaginary parts as channels → ``[1, 2, 256, frames]`` (channel 0 = Re, 1 = Im).
5. Pad frames with zeros at the end up to a multiple of ``frame_multiple`` = 2**(levels−1) (the U-Net's
   total down-sampling) and to at least 2·frame_multiple: the exported graph's frames axis is declared
   as ``frame_multiple·k``, k ≥ 2, and a graph fed another count fails in a Concat. Cropped after.

The inverse: crop to the original frame count, ``X = (|C|/β)^{1/α}·e^{i∠C}``, inverse STFT by windowed
overlap-add with the same window, divided by the summed squared window (``torch.istft``), trimmed by
255 samples at the start and to the original length L, then ``x ← x · norm``.
"""

from __future__ import annotations

import torch

SAMPLE_RATE = 16000
N_FFT = 510
HOP = 128
N_BINS = N_FFT // 2 + 1  # 256
ALPHA = 0.5
DEFAULT_BETA = 0.15


def _window() -> torch.Tensor:
    return torch.hann_window(N_FFT, periodic=True, dtype=torch.float32)


def num_frames(num_samples: int) -> int:
    """Frames of the centred STFT of a signal of `num_samples` samples (before any padding)."""
    return 1 + num_samples // HOP


def stft(wave: torch.Tensor) -> torch.Tensor:
    """[L] float waveform → complex [256, frames] STFT (uncompressed, not normalised)."""
    return torch.stft(wave.float(), N_FFT, HOP, window=_window(), center=True, pad_mode="reflect",
                      return_complex=True)


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """complex [256, frames] → [length] waveform (the inverse of `stft`)."""
    return torch.istft(spec, N_FFT, HOP, window=_window(), center=True, length=length)


def compress(spec: torch.Tensor, beta: float = DEFAULT_BETA) -> torch.Tensor:
    """β·|X|^α·e^{i∠X} (complex in, complex out)."""
    return beta * spec.abs() ** ALPHA * torch.exp(1j * spec.angle())


def decompress(spec: torch.Tensor, beta: float = DEFAULT_BETA) -> torch.Tensor:
    """The inverse of `compress`: (|C|/β)^{1/α}·e^{i∠C}."""
    return (spec.abs() / beta) ** (1.0 / ALPHA) * torch.exp(1j * spec.angle())


def to_channels(spec: torch.Tensor) -> torch.Tensor:
    """complex [F, T] → float [1, 2, F, T] (Re, Im)."""
    return torch.stack([spec.real, spec.imag], dim=0)[None].float()


def from_channels(x: torch.Tensor) -> torch.Tensor:
    """float [1, 2, F, T] → complex [F, T]."""
    return torch.complex(x[0, 0].float(), x[0, 1].float())


def pad_frames(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the last axis (frames) up to a multiple of `multiple`, and to at least 2·multiple when
    multiple > 1 (the graph's frames dim is multiple·k with k ≥ 2)."""
    frames = x.shape[-1]
    target = -(-frames // multiple) * multiple
    if multiple > 1:
        target = max(target, 2 * multiple)
    return torch.nn.functional.pad(x, (0, target - frames)) if target > frames else x


def spec_from_wave(wave: torch.Tensor, beta: float = DEFAULT_BETA, frame_multiple: int = 1):
    """Waveform [L] → (model input [1, 2, 256, frames_padded], norm factor, unpadded frame count)."""
    wave = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)
    norm = float(wave.abs().max())
    norm = norm if norm > 0 else 1.0
    spec = compress(stft(wave / norm), beta)
    return pad_frames(to_channels(spec), frame_multiple), norm, spec.shape[-1]


def wave_from_spec(x: torch.Tensor, norm: float, length: int, beta: float = DEFAULT_BETA) -> torch.Tensor:
    """Model output [1, 2, 256, frames_padded] → waveform [length] (crop, decompress, iSTFT, ×norm)."""
    spec = decompress(from_channels(x[..., : num_frames(length)]), beta)
    return istft(spec, length) * norm
