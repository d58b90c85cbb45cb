"""Validation feeds for zoo:rbqe that drive every exit (DESIGN.md §6: validation covers every branch).

Thresholds are chosen from the IQAM scores the model actually gives its exits on candidate images (JPEG
crops of the held-out demo photos, or synthetic blocky images without scikit-image), so the feeds reach
every exit for whatever weights are loaded, random ones included.
"""

from __future__ import annotations

import numpy as np
import torch

from edgekit.errors import SourceError

CROP = 64  # feed size: a multiple of 32, small enough for quick parity runs
MIN_MARGIN = 1e-4  # fp32 runtimes agree on IQAM to ~1e-6, so a threshold margin/2 away cannot flip


def _demo_crops(grid: bool = False) -> list[np.ndarray]:
    """64×64 crops of the held-out JPEGs: 4 spread positions, or (grid=True) every cell of a 64-px grid."""
    from edgekit.zoo.rbqe_data import QUALITY_FACTORS, compressed_pairs

    crops = []
    for qf in QUALITY_FACTORS:
        for _, comp, _ in compressed_pairs(qf, "heldout"):
            h, w = comp.shape
            if grid:
                corners = [(y, x) for y in range(0, h - CROP + 1, CROP) for x in range(0, w - CROP + 1, CROP)]
            else:
                corners = [(0, 0), (h // 2, w // 2), (h - CROP, w - CROP), (h // 4, 3 * w // 4)]
            for y, x in corners:
                y, x = y - y % 8, x - x % 8  # keep the JPEG grid where the codec put it
                crops.append(comp[y : y + CROP, x : x + CROP])
    return crops


def _candidate_batches():
    """Candidate images, cheapest first; later batches are only scored if an exit is still unreached."""
    try:
        yield _demo_crops()
        yield _synthetic_crops()
        yield _demo_crops(grid=True)
    except SourceError:  # no scikit-image / Pillow
        yield _synthetic_crops()


def _synthetic_crops(count: int = 40) -> list[np.ndarray]:
    """Smooth ramps plus texture, quantised per 8×8 block with varying strength (JPEG-like blocking)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:CROP, 0:CROP] / CROP
    crops = []
    for i in range(count):
        image = 0.5 + 0.3 * np.sin(3 * xx + rng.uniform(0, 6)) * np.cos(2 * yy + rng.uniform(0, 6))
        image += rng.uniform(0, 0.1) * rng.standard_normal((CROP, CROP))
        blocks = image.reshape(CROP // 8, 8, CROP // 8, 8).mean(axis=(1, 3), keepdims=True)
        mix = i / (count - 1)  # 0: fully blocky … 1: untouched
        blocky = np.broadcast_to(blocks, (CROP // 8, 8, CROP // 8, 8)).reshape(CROP, CROP)
        image = mix * image + (1 - mix) * blocky
        crops.append(np.clip(image, 0, 1).astype(np.float32))
    return crops


@torch.no_grad()
def exit_scores(model, images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) → (B, exits) IQAM score of every exit's output."""
    return torch.stack([model.quality(out) for out in model.forward_all(images)], dim=1)


def feeds_for_every_exit(model) -> list[dict[str, torch.Tensor]]:
    """Feed dicts {"image", "threshold"} whose early-exit path is exit 0, 1, …, L-1 in that order, plus
    one larger image at thresholds 0 and 2 (exits 0 and L-1) for a second shape. Raises SourceError if
    some exit cannot be reached by any candidate image."""
    image_batches, score_batches = [], []
    for crops in _candidate_batches():
        image_batches.append(torch.from_numpy(np.stack(crops))[:, None])
        score_batches.append(exit_scores(model, image_batches[-1]).double())
        images, scores = torch.cat(image_batches), torch.cat(score_batches)
        levels = scores.shape[1]
        if all(_best_margin(scores, k)[1] >= MIN_MARGIN for k in range(1, levels - 1)):
            break

    def feed(index: int, threshold: float, image=None) -> dict[str, torch.Tensor]:
        image = images[index : index + 1].clone() if image is None else image
        return {"image": image, "threshold": torch.tensor(threshold, dtype=torch.float32)}

    feeds = [feed(0, 0.0)]  # every score is ≥ 0: exit 0
    for k in range(1, levels - 1):
        # exit k needs score_k ≥ t > every earlier score: t midway, on the image with the widest gap
        best, margin = _best_margin(scores, k)
        if margin < MIN_MARGIN:
            raise SourceError(f"zoo:rbqe: no candidate image reaches exit {k} (best margin {margin:.1e})")
        feeds.append(feed(best, float(scores[best, k]) - margin / 2))
    feeds.append(feed(0, 2.0))  # IQAM ≤ 1: no early exit passes, the last exit returns
    wide = torch.nn.functional.interpolate(images[:1], size=(2 * CROP, 3 * CROP), mode="bilinear")
    feeds += [feed(0, 0.0, wide), feed(0, 2.0, wide)]
    return feeds


def _best_margin(scores: torch.Tensor, k: int) -> tuple[int, float]:
    """The candidate where exit k's score most exceeds every earlier exit's, and by how much."""
    margin = scores[:, k] - scores[:, :k].max(dim=1).values
    best = int(margin.argmax())
    return best, float(margin[best])
