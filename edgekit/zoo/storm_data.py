"""zoo:storm's demo data: the committed espeak-ng utterances (edgekit/zoo/data/speech, made by
benchmarks/make_storm_data.py) mixed at run time with white, pink or babble noise at −5…15 dB SNR.
Everything is seeded, so training, evaluation, calibration and tests see the same mixtures.

Split: the last `HELDOUT` utterances (by file name) are held out for evaluation; babble for a split is
built only from that split's other utterances.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SPEECH_DIR = Path(__file__).parent / "data" / "speech"
SAMPLE_RATE = 16000
HELDOUT = 8
NOISE_KINDS = ("white", "pink", "babble")
SNR_RANGE_DB = (-5.0, 15.0)


def read_wav(path: Path) -> np.ndarray:
    """16-bit PCM mono wav → float32 in [−1, 1)."""
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return data.astype(np.float32) / 32768.0


@lru_cache(maxsize=None)
def _all_utterances() -> tuple[np.ndarray, ...]:
    paths = sorted(SPEECH_DIR.glob("*.wav"))
    if not paths:
        raise FileNotFoundError(f"no speech wavs in {SPEECH_DIR} (run benchmarks/make_storm_data.py)")
    return tuple(read_wav(p) for p in paths)


def utterances(split: str) -> tuple[np.ndarray, ...]:
    """The clean utterances of `split` ("train" or "test")."""
    every = _all_utterances()
    if split == "train":
        return every[:-HELDOUT]
    if split == "test":
        return every[-HELDOUT:]
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped by 1/√f in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(freqs), n=length)


def babble_noise(length: int, pool: tuple[np.ndarray, ...], rng: np.random.Generator,
                 talkers: int = 4) -> np.ndarray:
    out = np.zeros(length)
    for k in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False):
        talker = np.tile(pool[k], length // len(pool[k]) + 2)
        start = int(rng.integers(0, len(pool[k])))
        segment = talker[start: start + length]
        out += segment / (np.std(segment) + 1e-8)
    return out


def noise_signal(kind: str, length: int, rng: np.random.Generator,
                 pool: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(length)
    if kind == "pink":
        return pink_noise(length, rng)
    if kind == "babble":
        return babble_noise(length, pool, rng)
    raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + a·noise with a chosen so that 10·log10(Σclean² / Σ(a·noise)²) = snr_db."""
    gain = np.sqrt(np.sum(clean**2) / (np.sum(noise**2) * 10 ** (snr_db / 10) + 1e-12))
    return (clean + gain * noise).astype(np.float32)


@dataclass(frozen=True)
class Mixture:
    clean: np.ndarray
    noisy: np.ndarray
    snr_db: float
    kind: str
    utterance: int  # index within the split


def random_mixture(split: str, rng: np.random.Generator, length: int | None = None) -> Mixture:
    """One mixture; `length` (samples) crops/loops the utterance to a fixed size for batching."""
    pool = utterances(split)
    index = int(rng.integers(len(pool)))
    clean = pool[index]
    if length is not None:
        clean = np.tile(clean, length // len(clean) + 1)
        start = int(rng.integers(0, max(1, len(pool[index]) - 1)))
        clean = np.roll(clean, -start)[:length]
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    others = tuple(u for i, u in enumerate(pool) if i != index)
    snr = float(rng.uniform(*SNR_RANGE_DB))
    noisy = mix(clean, noise_signal(kind, len(clean), rng, others), snr)
    return Mixture(clean.astype(np.float32), noisy, snr, kind, index)


def heldout_mixtures(count: int = 8, seed: int = 1234) -> list[Mixture]:
    """Deterministic evaluation mixtures: held-out utterance i % HELDOUT, noise kinds in turn, SNRs
    spread evenly over −5…15 dB."""
    rng = np.random.default_rng(seed)
    pool = utterances("test")
    snrs = np.linspace(*SNR_RANGE_DB, count) if count > 1 else [5.0]
    out = []
    for i in range(count):
        index = i % len(pool)
        kind = NOISE_KINDS[i % len(NOISE_KINDS)]
        others = tuple(u for j, u in enumerate(pool) if j != index)
        noisy = mix(pool[index], noise_signal(kind, len(pool[index]), rng, others), float(snrs[i]))
        out.append(Mixture(pool[index], noisy, float(snrs[i]), kind, index))
    return out
