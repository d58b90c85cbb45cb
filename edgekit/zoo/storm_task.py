"""zoo:storm's INT8 hooks: calibration feeds (training mixtures) and the task metric (SI-SDR on held-out
mixtures), both built from the shipped speech clips and generated noise (storm_data).

STFT and iSTFT stay outside the graph (DESIGN.md §6), so the metric turns `enhanced_spec` back into a
waveform with storm_audio before scoring it against the clean speech.
"""

from __future__ import annotations

import numpy as np
import torch

CALIB_SECONDS = 1.0
# Each calibration feed is a whole sampler run, so a feed costs N network evaluations: 32 feeds cycling
# N ∈ {5, 10, 20} (373 evaluations) calibrate in 32 s where 64 feeds at {5, 20, 50} (1600) took 175 s, with the
# same int8 SI-SDR drop (ORT, 8 held-out mixtures: N = 5 +0.101 vs +0.107 dB, N = 20 −0.121 vs −0.132 dB;
# AMD EPYC, 2 cores, 2026-12-06). The sampler's noise schedule spans the same range at any N, so fewer
# steps see the same activation ranges. benchmarks/README.md, "StoRM calibration time".
CALIB_STEPS = (5, 10, 20)  # step counts cycled over the calibration feeds (clipped to max_steps)
CALIB_MAX_FEEDS = 32  # --calib-samples above this get 32 feeds
METRIC_STEPS = 20  # the paper's claim: quality holds down to N ≈ 20


def _spec_feed(model, wave: np.ndarray, num_steps: int, seed: int):
    from edgekit.zoo import storm_audio as audio
    from edgekit.zoo.storm_feeds import storm_feed

    spec, norm, _ = audio.spec_from_wave(torch.from_numpy(wave), model.beta, model.frame_multiple)
    return storm_feed(model, spec.numpy(), num_steps, seed=seed), norm


def calibration_feeds(model, count: int) -> list[dict[str, np.ndarray]]:
    """min(`count`, CALIB_MAX_FEEDS) one-second training mixtures (noise kinds and SNRs from a fixed seed)."""
    from edgekit.zoo.storm_data import SAMPLE_RATE, random_mixture

    rng = np.random.default_rng(0)
    feeds = []
    for i in range(min(count, CALIB_MAX_FEEDS)):
        mixture = random_mixture("train", rng, length=int(CALIB_SECONDS * SAMPLE_RATE))
        steps = min(CALIB_STEPS[i % len(CALIB_STEPS)], model.max_steps)
        feeds.append(_spec_feed(model, mixture.noisy, steps, seed=i)[0])
    return feeds


def task_metric(model, num_steps: int | None = None, count: int = 8):
    """Mean SI-SDR (dB) of the enhanced held-out mixtures at `num_steps` (default min(20, max_steps))."""
    from edgekit.validation.metrics import TaskMetric, si_sdr
    from edgekit.zoo import storm_audio as audio
    from edgekit.zoo.storm_data import heldout_mixtures

    steps = min(num_steps or METRIC_STEPS, model.max_steps)
    feeds, targets = [], []
    for i, mixture in enumerate(heldout_mixtures(count)):
        feed, norm = _spec_feed(model, mixture.noisy, steps, seed=100 + i)
        feeds.append(feed)
        targets.append((mixture.clean, norm))

    def score(outputs, target) -> float:
        clean, norm = target
        wave = audio.wave_from_spec(torch.from_numpy(np.asarray(outputs["enhanced_spec"])), norm, len(clean),
                                    model.beta)
        return si_sdr(clean, wave.numpy())

    return TaskMetric("si_sdr", feeds, targets, score)
