"""Validation feeds and tuning candidates for `edgekit.flow.exit_chain` (DESIGN.md §7: validation covers
every exit). A single threshold reaches exit k only on an input whose exit-k score beats every earlier
exit's, so thresholds are planted between the scores the chain actually gives a set of probe inputs.
"""

from __future__ import annotations

import torch

from edgekit.errors import SourceError

# fp32 runtimes agree on a score to ~1e-6; a threshold this far from every score cannot flip an exit
MIN_MARGIN = 1e-4
PROBE_SCALES = (0.0, 0.1, 0.3, 1.0, 3.0)
PROBE_SEEDS = 4


def default_probes(example: torch.Tensor) -> list[torch.Tensor]:
    """The example input, noisy copies of it and plain noise at a few scales (deterministic)."""
    if not example.is_floating_point():
        return [example.clone()]
    generator = torch.Generator().manual_seed(0)
    spread = float(example.float().std()) if example.numel() > 1 else 1.0
    spread = spread if spread > 0 else 1.0
    probes = [example.clone()]
    for _ in range(PROBE_SEEDS):
        noise = torch.randn(example.shape, generator=generator).to(example.dtype)
        probes += [example + scale * spread * noise for scale in PROBE_SCALES[1:]]
        probes += [3.0 * spread * noise * torch.rand((), generator=generator)]
    return probes


def probe_scores(chain, probes: list[torch.Tensor]) -> torch.Tensor:
    """[probes, num_exits − 1] early-exit scores (float64)."""
    return torch.stack([chain.exit_scores(p) for p in probes])


def feeds_for_every_exit(chain, probes: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """One feed {input, threshold} per exit, exit 0 first, each on the probe with the widest margin.
    Raises SourceError naming an exit no probe can reach with a single threshold."""
    input_name, threshold_name = chain.input_names
    last = chain.num_exits - 1
    if last == 0:
        return [{input_name: probes[0], threshold_name: torch.tensor(chain.threshold, dtype=torch.float32)}]
    scores = probe_scores(chain, probes)
    feeds = []
    for k in range(last + 1):
        best, threshold, margin = _plant(scores, k)
        if margin < MIN_MARGIN:
            raise SourceError(
                f"exit_chain: no probe input reaches exit {k} (it needs a score of exit {k} above every earlier "
                f"exit's; best margin {margin:.1e}): pass probe_inputs= with real inputs, or check the score")
        feeds.append({input_name: probes[best].clone(),
                      threshold_name: torch.tensor(threshold, dtype=torch.float32)})
    return feeds


def _plant(scores: torch.Tensor, k: int) -> tuple[int, float, float]:
    """(probe, threshold, margin) that makes the chain take exit k on that probe."""
    last = scores.shape[1]
    if k == 0:  # any threshold at or below score 0
        best = int(scores[:, 0].argmax())
        return best, _f32_below(float(scores[best, 0]) - 1.0), 1.0
    if k == last:  # above every early score
        best = 0
        return best, float(scores[best].max()) + 1.0, 1.0
    margin = scores[:, k] - scores[:, :k].max(dim=1).values
    best = int(margin.argmax())
    gap = float(margin[best])
    return best, float(scores[best, k]) - gap / 2, gap


def _f32_below(value: float) -> float:
    return float(torch.tensor(value, dtype=torch.float32))


def threshold_candidates(chain, probes: list[torch.Tensor], count: int = 11) -> list[float]:
    """`edgekit tune` candidates: `count` quantiles of the probes' early-exit scores (each reaches some exit)
    plus one above them all (every sample to the last exit: the costliest setting)."""
    if chain.num_exits == 1:
        return [chain.threshold]
    scores = probe_scores(chain, probes).flatten()
    quantiles = torch.quantile(scores, torch.linspace(0, 1, count, dtype=scores.dtype))
    top = float(scores.max())
    values = {round(float(q), 4) for q in quantiles} | {round(top + max(1.0, abs(top) * 0.1), 4)}
    return sorted(values)
