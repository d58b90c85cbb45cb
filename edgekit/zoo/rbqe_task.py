"""zoo:rbqe's INT8 hooks: calibration feeds (training photos) and the task metric (PSNR on held-out photos).

Both come from the scikit-image demo photos JPEG-compressed at QF 10–50 (rbqe_data), so calibration and
evaluation never share an image. Half of the feeds use threshold 2 (no exit passes, every column runs,
so every conv is calibrated/measured) and half the paper's threshold (the path users deploy).
"""

from __future__ import annotations

import numpy as np

CALIB_CROP = 96  # multiples of 32; small, so 64 calibration samples take seconds
EVAL_CROP = 128  # one centre crop per held-out photo and QF: 50 feeds a runtime runs in seconds
ALL_EXITS = 2.0  # above any IQAM score: the last exit runs


def _crop(image: np.ndarray, size: int, y: int, x: int) -> np.ndarray:
    h, w = image.shape
    y = min(max(0, y), h - size)
    x = min(max(0, x), w - size)
    y, x = y - y % 8, x - x % 8  # keep the JPEG block grid where the codec put it
    return np.ascontiguousarray(image[y : y + size, x : x + size])


def _feed(image: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    return {"image": image[None, None].astype(np.float32), "threshold": np.array(threshold, np.float32)}


def calibration_feeds(count: int, threshold: float) -> list[dict[str, np.ndarray]]:
    """`count` crops of the training photos over every QF, in a fixed order (deterministic)."""
    from edgekit.zoo.rbqe_data import QUALITY_FACTORS, compressed_pairs

    rng = np.random.default_rng(0)
    pool = [comp for qf in QUALITY_FACTORS for _, comp, _ in compressed_pairs(qf, "train")]
    feeds = []
    for i in range(count):
        image = pool[i % len(pool)]
        h, w = image.shape
        crop = _crop(image, CALIB_CROP, int(rng.integers(0, h)), int(rng.integers(0, w)))
        feeds.append(_feed(crop, ALL_EXITS if i % 2 == 0 else threshold))
    return feeds


def task_metric(threshold: float):
    """Mean PSNR (dB) of `enhanced` against the clean held-out photos, at both thresholds."""
    from edgekit.validation.metrics import TaskMetric, psnr
    from edgekit.zoo.rbqe_data import QUALITY_FACTORS, compressed_pairs

    feeds, targets = [], []
    for qf in QUALITY_FACTORS:
        for _, comp, clean in compressed_pairs(qf, "heldout"):
            h, w = comp.shape
            y, x = (h - EVAL_CROP) // 2, (w - EVAL_CROP) // 2
            for t in (ALL_EXITS, threshold):
                feeds.append(_feed(_crop(comp, EVAL_CROP, y, x), t))
                targets.append(_crop(clean, EVAL_CROP, y, x))

    def score(outputs, target) -> float:
        return psnr(np.clip(outputs["enhanced"][0, 0], 0.0, 1.0), target)

    return TaskMetric("psnr", feeds, targets, score)
