"""Compare runners against the reference on the same inputs: error statistics, exact integer outputs,
and which control-flow paths (exit indices, step counts) each runtime took (DESIGN.md §5–7).

A comparison is a function `(reference, candidate) -> OutputComparison`; a runtime's result is a
`RuntimeValidation` that serialises to the manifest's `validation` block and is falsy when it failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec, np_dtype
from edgekit.validation.exact import integer_mismatch, nonfinite_problem


@dataclass(frozen=True)
class Tolerance:
    """Pass when every element is within atol + rtol·|ref| (unless atol is None) and rel L2 ≤ max_rel_l2."""

    atol: float | None
    rtol: float
    max_rel_l2: float
    path_agreement: float = 1.0  # share of samples whose integer outputs (exit paths) must match exactly
    # False where a task metric gates (DESIGN.md §7: int8 with the model's own metric): atol/rtol/rel-L2 are
    # measured and reported but do not fail; shapes, NaN/Inf and exit paths still do
    elementwise: bool = True


# DESIGN.md §7. fp16/bf16 check relative L2 only: elementwise bounds would depend on each output's scale.
DEFAULT_TOLERANCES = {
    "fp32": Tolerance(1e-4, 1e-3, 1e-5),
    "fp16": Tolerance(None, 0.0, 1e-2),
    "bf16": Tolerance(None, 0.0, 2e-2, path_agreement=0.95),  # 8 mantissa bits vs fp16's 11; paths as int8
    # int8: exit paths may flip for inputs scored right at a threshold (DESIGN.md §7: ≥ 95% identical);
    # outputs of samples that took the same path stay within 5% relative L2 of the fp32 reference.
    "int8": Tolerance(None, 0.0, 5e-2, path_agreement=0.95),
}


@dataclass
class OutputComparison:
    name: str
    max_abs_err: float = 0.0
    max_rel_l2: float = 0.0
    failures: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.failures


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, tol: Tolerance, sample: int) -> OutputComparison:
    result = OutputComparison(name)
    where = f"output {name!r} sample {sample}"
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        result.failures.append(f"{where}: shape {list(got.shape)} vs reference {list(ref.shape)}")
        return result
    if ref.dtype.kind in "biu" or got.dtype.kind in "biu":
        failure, result.max_abs_err = integer_mismatch(ref, got)
        if failure:
            result.failures.append(f"{where}: {failure}")
        return result
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    # DESIGN.md §7: any NaN/Inf fails, naming the output. A NaN would make rel-L2 NaN (and `NaN > tol` is
    # false); an Inf in the reference would make rel-L2 0: neither may ever pass.
    for role, values in (("the reference", ref64), ("the output", got64)):
        problem = nonfinite_problem(values)
        if problem:
            result.failures.append(f"{where}: {role} has {problem}")
    if result.failures:
        result.max_abs_err = result.max_rel_l2 = math.inf
        return result
    err = np.abs(got64 - ref64)
    result.max_abs_err = float(err.max()) if err.size else 0.0
    norm = float(np.linalg.norm(ref64)) if ref64.size else 0.0
    result.max_rel_l2 = float(np.linalg.norm(err)) / max(norm, 1e-12) if err.size else 0.0
    if not tol.elementwise:
        return result  # reported (max_abs_err, max_rel_l2), not gating
    if tol.atol is not None:
        outside = err > tol.atol + tol.rtol * np.abs(ref64)
        if outside.any():
            result.failures.append(
                f"{where}: {int(outside.sum())}/{err.size} elements outside atol={tol.atol:g} rtol={tol.rtol:g} "
                f"(max abs err {result.max_abs_err:.3g})"
            )
    if result.max_rel_l2 > tol.max_rel_l2:
        result.failures.append(f"{where}: relative L2 error {result.max_rel_l2:.3g} > {tol.max_rel_l2:g}")
    return result


@dataclass
class RuntimeValidation:
    runtime: str
    status: str  # passed | failed | skipped
    samples: int = 0
    max_abs_err: float = 0.0
    max_rel_l2: float = 0.0
    tolerance: Tolerance | None = None
    paths: dict[str, list] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    reason: str | None = None
    precision: str = "fp32"
    path_agreement: float | None = None
    metric: dict | None = None  # int8: the task metric vs the fp32 reference (edgekit.validation.metrics.MetricResult)
    rerouted: int | None = None  # --keep-exits: samples whose reference exit was dropped (validation/kept_exits.py)

    def __bool__(self) -> bool:
        return self.status != "failed"

    def to_json(self) -> dict:
        if self.status == "skipped":
            return {"status": "skipped", "reason": self.reason}
        out = {
            "status": self.status, "samples": self.samples, "precision": self.precision,
            "max_abs_err": _finite(self.max_abs_err), "max_rel_l2": _finite(self.max_rel_l2),
            "atol": self.tolerance.atol, "rtol": self.tolerance.rtol, "max_rel_l2_allowed": self.tolerance.max_rel_l2,
            "paths": self.paths,
        }
        if not self.tolerance.elementwise:
            out["gate"] = "metric"  # element-wise errors reported, not gating (DESIGN.md §7)
        if self.path_agreement is not None:
            out["path_agreement"] = self.path_agreement
        if self.metric is not None:
            out["metric"] = self.metric
        if self.rerouted is not None:
            out["rerouted"] = self.rerouted
        if self.failures:
            out["failures"] = self.failures[:20]
        return out

    @classmethod
    def skipped(cls, runtime: str, reason: str) -> "RuntimeValidation":
        return cls(runtime, "skipped", reason=reason)


def path_values(specs: Iterable[TensorSpec], tensors: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The control-flow markers in one sample: integer scalars such as `exit_index` or `num_steps`."""
    out = {}
    for spec in specs:
        value = tensors.get(spec.name)
        if value is not None and np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iu":
            out[spec.name] = int(value)
    return out


def validate_runtime(
    runtime: str,
    run: Callable[[dict], dict],
    samples: list[dict],
    references: list[dict],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    tolerance: Tolerance,
    precision: str = "fp32",
) -> RuntimeValidation:
    """Run `run` on every sample and compare with `references`; collect every failure before returning.

    Raises EdgekitError for zero samples or a reference list of another length: nothing compared is no pass.
    """
    if not samples:
        raise EdgekitError(f"{runtime}: no validation samples (zero samples cannot pass)")
    if len(references) != len(samples):
        raise EdgekitError(f"{runtime}: {len(samples)} samples but {len(references)} reference outputs")
    result = RuntimeValidation(runtime, "passed", samples=len(samples), tolerance=tolerance, precision=precision)
    seen: dict[str, set] = {}
    disagreements = 0
    for i, (feed, ref) in enumerate(zip(samples, references)):
        try:
            got = run(feed)
        except EdgekitError as exc:  # a runtime that cannot run a sample fails it; the others still run
            result.failures.append(f"sample {i}: {exc}")
            continue
        for name, value in {**path_values(inputs, feed), **path_values(outputs, got)}.items():
            seen.setdefault(name, set()).add(value)
        if tolerance.path_agreement < 1.0 and path_values(outputs, got) != path_values(outputs, ref):
            disagreements += 1  # another exit was taken: its outputs are not comparable with the reference's
            continue
        for spec in outputs:
            if spec.name not in got:
                result.failures.append(f"output {spec.name!r} sample {i}: missing from {runtime}'s outputs")
                continue
            cmp = compare_output(spec.name, ref[spec.name], got[spec.name], tolerance, i)
            result.max_abs_err = max(result.max_abs_err, cmp.max_abs_err)
            result.max_rel_l2 = max(result.max_rel_l2, cmp.max_rel_l2)
            result.failures.extend(cmp.failures)
    result.paths = {k: sorted(v) for k, v in seen.items()}
    if tolerance.path_agreement < 1.0:
        result.path_agreement = 1.0 - disagreements / max(len(samples), 1)
        if result.path_agreement < tolerance.path_agreement:
            result.failures.append(f"exit paths match the reference on {result.path_agreement:.0%} of samples "
                                   f"(< {tolerance.path_agreement:.0%})")
    if result.failures:
        result.status = "failed"
    return result


# --- inputs --------------------------------------------------------------------------------------


def make_samples(
    inputs: list[TensorSpec],
    example: dict[str, np.ndarray],
    extra: list[dict[str, np.ndarray]],
    count: int,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """The validation feeds: the example, then `extra` (branch-driving feeds), then random ones up to `count`.

    Random feeds draw float tensors from a normal distribution with the example's shapes; integer and
    bool inputs, and float scalars (thresholds, rates), keep the example's values — they are counts,
    flags or settings, and random values would be meaningless or invalid.
    """
    samples = [dict(example)] + [_complete(f, example, inputs) for f in extra]
    rng = np.random.default_rng(seed)
    while len(samples) < count:
        feed = {}
        for spec in inputs:
            base = np.asarray(example[spec.name])
            if spec.is_float and base.ndim > 0:
                feed[spec.name] = rng.standard_normal(base.shape).astype(np_dtype(spec.dtype))
            else:
                feed[spec.name] = base.copy()
        samples.append(feed)
    return samples


def _complete(feed: dict, example: dict, inputs: list[TensorSpec]) -> dict:
    names = {s.name for s in inputs}
    unknown = set(feed) - names
    if unknown:
        raise EdgekitError(f"validation feed names unknown inputs {', '.join(sorted(unknown))} "
                           f"(inputs: {', '.join(sorted(names))})")
    return {s.name: np.asarray(feed.get(s.name, example[s.name])) for s in inputs}


def load_npz_feeds(path: Path, inputs: list[TensorSpec], flag: str = "--data") -> list[dict[str, np.ndarray]]:
    """Feeds from `--data` (a .npz, .npy or folder of them; layouts in `edgekit.feedfiles`), checked
    against the inputs; errors name `flag`."""
    from edgekit.feedfiles import load_feed_file

    return load_feed_file(path, inputs, flag)


def _finite(value: float):
    return value if math.isfinite(value) else None
