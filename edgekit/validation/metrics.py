"""Task metrics: how much a compressed artifact (INT8, pruned) costs in the model's own terms.

A metric scores a runtime's outputs, higher is better, and reports the *drop* from the fp32 reference:
- a model's `task_metric()` hook brings feeds plus ground truth (RBQE: PSNR against the clean image;
  StoRM: SI-SDR against the clean speech), so the drop is fp32 score − candidate score;
- without ground truth (user models) the candidate is compared with the fp32 reference's outputs:
  `cosine` (the default: drop = 1 − cosine similarity) or `FILE.py:fn(reference, candidate) -> float`
  (drop = fn(ref, ref) − fn(ref, candidate)).
Used by `--max-drop` (calibration.accuracy), int8 validation, `edgekit quantize` and `edgekit sweep`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import EdgekitError

Feed = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]
RunFn = Callable[[Feed], Outputs]


def memo_run(run: RunFn) -> RunFn:
    """`run` with its outputs remembered per feed content: validation and the metric run the same inputs,
    and a runtime (or the PyTorch reference) need not run them twice."""
    import hashlib

    cache: dict[str, Outputs] = {}

    def cached(feed: Feed) -> Outputs:
        digest = hashlib.sha1()
        for name in sorted(feed):
            value = np.ascontiguousarray(feed[name])
            digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
            digest.update(value.tobytes())
        key = digest.hexdigest()
        if key not in cache:
            cache[key] = run(feed)
        return cache[key]

    return cached


def psnr(reference: np.ndarray, candidate: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf when identical)."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(candidate, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), zero-mean signals."""
    from edgekit.zoo.storm_metrics import si_sdr as _si_sdr

    return _si_sdr(np.asarray(reference).ravel(), np.asarray(estimate).ravel())


def cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Cosine similarity of the flattened arrays (1.0 when both are all zeros)."""
    a = np.asarray(reference, np.float64).ravel()
    b = np.asarray(candidate, np.float64).ravel()
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norms)


@dataclass
class MetricResult:
    name: str
    baseline: float  # the fp32 reference's score
    value: float  # the candidate's score
    samples: int

    @property
    def drop(self) -> float:
        return self.baseline - self.value

    def within(self, max_drop: float) -> bool:
        return self.drop <= max_drop

    def to_json(self) -> dict:
        # non-finite scores (a NaN output, PSNR of identical images) become null + a reason: JSON has no NaN
        from edgekit.jsonsafe import finite_json

        return finite_json({"metric": self.name, "baseline": round(self.baseline, 6), "value": round(self.value, 6),
                            "drop": round(self.drop, 6), "samples": self.samples})


@dataclass
class TaskMetric:
    """A model's own metric: `score(outputs, target) -> float` averaged over feeds with ground truth."""

    name: str
    feeds: list[Feed]
    targets: list
    score: Callable[[Outputs, object], float]

    def evaluate(self, run: RunFn, reference: RunFn | None = None, baseline: float | None = None) -> MetricResult:
        if baseline is None:
            if reference is None:
                raise ValueError("a baseline score or a reference runner is needed")
            baseline = self.mean_score(reference)
        return MetricResult(self.name, baseline, self.mean_score(run), len(self.feeds))

    def mean_score(self, run: RunFn) -> float:
        return float(np.mean([self.score(run(feed), target) for feed, target in zip(self.feeds, self.targets)]))


@dataclass
class SimilarityMetric:
    """Output similarity with the fp32 reference: `fn(reference_outputs, candidate_outputs) -> float`."""

    name: str
    feeds: list[Feed]
    fn: Callable[[Outputs, Outputs], float]

    def evaluate(self, run: RunFn, reference: RunFn | None = None, baseline: float | None = None) -> MetricResult:
        if reference is None:
            raise ValueError("an output-similarity metric needs the reference runner")
        pairs = [(reference(feed), run(feed)) for feed in self.feeds]
        if baseline is None:
            baseline = float(np.mean([self.fn(ref, ref) for ref, _ in pairs]))
        return MetricResult(self.name, baseline, float(np.mean([self.fn(ref, out) for ref, out in pairs])),
                            len(pairs))


def output_cosine(reference: Outputs, candidate: Outputs) -> float:
    """Mean cosine similarity over the float outputs (integer outputs such as exit_index are paths, not data)."""
    names = [k for k, v in reference.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    return float(np.mean([cosine(reference[k], candidate[k]) for k in names])) if names else 1.0


BUILTIN = ("psnr", "si_sdr", "cosine")
# Budgets when --max-drop is not given: the INT8 issue's 0.3 dB PSNR; 0.5 dB SI-SDR (about the run-to-run
# spread of StoRM's sampler over noise seeds); 1% of cosine similarity for plain output comparison.
DEFAULT_MAX_DROP = {"psnr": 0.3, "si_sdr": 0.5, "cosine": 0.01}


def resolve_metric(spec: str | None, module, feeds: list[Feed]):
    """The metric for `--metric SPEC` on a model (`module` may be None for ONNX sources).

    None: the model's `task_metric()` hook if it has one, else output cosine similarity on `feeds`.
    psnr / si_sdr need ground truth, so the model's hook must provide that metric. Raises EdgekitError.
    """
    hook = getattr(module, "task_metric", None) if module is not None else None
    if spec is None:
        return hook() if hook is not None else SimilarityMetric("cosine", feeds, output_cosine)
    if spec == "cosine":
        return SimilarityMetric("cosine", feeds, output_cosine)
    if spec in ("psnr", "si_sdr"):
        metric = hook() if hook is not None else None
        if metric is None or metric.name != spec:
            have = f"its task_metric() gives {metric.name}" if metric is not None else "it has no task_metric() hook"
            raise EdgekitError(f"--metric {spec} needs ground truth from the model and {have}; "
                               f"use --metric cosine (output similarity) or --metric FILE.py:fn")
        return metric
    path, sep, name = spec.rpartition(":")
    if sep and path.endswith(".py"):
        from edgekit.pyfile import function_from_file

        return SimilarityMetric(spec, feeds, function_from_file(Path(path), name, "--metric"))
    raise EdgekitError(f"--metric {spec}: expected one of {', '.join(BUILTIN)} or FILE.py:fn")
