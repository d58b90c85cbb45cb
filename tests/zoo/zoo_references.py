"""Stored reference outputs of the zoo models (#25: moving them onto edgekit.flow must not change a number).

`python tests/zoo/zoo_references.py` rewrites tests/zoo/data/zoo_references.npz from the current code; run it
only when a model's outputs are meant to change, and say so in the commit. The inputs are rebuilt from
seeds here, so the file holds outputs only (a few kB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgekit.zoo.rbqe import build_rbqe
from edgekit.zoo.storm import build_storm, make_noise
from edgekit.zoo.toy import build_toy

STORED = Path(__file__).parent / "data" / "zoo_references.npz"
STORM_STEPS = (1, 2, 5)
TOY_CASES = ((-1.0, 1), (2.0, 2), (0.5, 4))


def rbqe_images() -> list[torch.Tensor]:
    """32² crops: a ramp with seeded texture at several strengths (IQAM moves differently with depth)."""
    g = torch.Generator().manual_seed(11)
    ramp = torch.linspace(0.2, 0.8, 32)[None, :].expand(32, 32)
    return [(ramp + scale * torch.randn(32, 32, generator=g)).clamp(0, 1)[None, None]
            for scale in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3) for _ in range(2)]


def planted(model) -> list[tuple[int, float]]:
    """(image, threshold) per exit that the model can reach on rbqe_images(): exit k needs its score above
    every earlier exit's; the threshold sits halfway in that margin. Stored, so a refactor can't move it."""
    with torch.no_grad():
        scores = torch.stack([torch.stack([model.quality(o).min() for o in model.forward_all(im)[:-1]])
                              for im in rbqe_images()]).double()
    cases = [(int(scores[:, 0].argmax()), float(scores[:, 0].max()) - 0.5)]
    for k in range(1, scores.shape[1]):
        margin = scores[:, k] - scores[:, :k].max(dim=1).values
        best = int(margin.argmax())
        if margin[best] > 1e-3:
            cases.append((best, float(scores[best, k] - margin[best] / 2)))
    cases.append((0, 2.0))
    return cases


def _storm_spec() -> torch.Tensor:
    return 0.3 * torch.randn(1, 2, 256, 16, generator=torch.Generator().manual_seed(12))


def _toy_image() -> torch.Tensor:
    return torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(13))


def compute(stored: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """name → output array, for the shipped RBQE and StoRM checkpoints, a tiny random RBQE and zoo:toy.
    With `stored`, RBQE runs the stored (image, threshold) cases instead of planting new ones."""
    refs: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for tag, model in (("rbqe", build_rbqe()), ("rbqe_tiny", build_rbqe(width=4, weights="none", seed=3))):
            images = rbqe_images()
            cases = ([(int(i), float(t)) for i, t in stored[f"{tag}/cases"]] if stored is not None
                     else planted(model))
            refs[f"{tag}/cases"] = np.array(cases)
            for case, (i, threshold) in enumerate(cases):
                out, index = model(images[i], torch.tensor(threshold, dtype=torch.float32))
                refs[f"{tag}/case{case}"] = out.numpy()
                refs[f"{tag}/case{case}/exit"] = index.numpy()
            for k, out in enumerate(model.forward_all(images[-1])):
                refs[f"{tag}/all{k}"] = out.numpy()
        storm = build_storm()
        spec = _storm_spec()
        noise = make_noise(storm.max_steps, spec.shape[-1], seed=4)
        for n in STORM_STEPS:
            refs[f"storm/n{n}"] = storm(spec, torch.tensor(n), noise)[..., ::4, :].numpy()  # every 4th bin: 8 kB
        refs["storm/predict"] = storm.predict(spec)[..., ::4, :].numpy()
        toy = build_toy(width=8, max_steps=4, seed=5)
        for threshold, steps in TOY_CASES:
            out, index = toy(_toy_image(), torch.tensor(threshold), torch.tensor(steps))
            refs[f"toy/t{threshold}/n{steps}"] = out.numpy()
            refs[f"toy/t{threshold}/n{steps}/exit"] = index.numpy()
    return refs


if __name__ == "__main__":
    STORED.parent.mkdir(parents=True, exist_ok=True)
    refs = compute()
    np.savez_compressed(STORED, **refs)
    exits = {k: int(v) for k, v in refs.items() if k.endswith("/exit")}
    print(f"wrote {len(refs)} arrays to {STORED} ({STORED.stat().st_size} bytes); exits {exits}")
