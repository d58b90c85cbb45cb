"""`export --precision auto`: export every precision the openvino target can run here, validate each, time
the survivors on this machine and keep the fastest (#20, DESIGN.md §7: budget first — a candidate that
fails validation, its task metric budget included, is never chosen).

Candidates: fp32, bf16 (CPUs with bf16 math), int8 and mixed (int8 + bf16; both need calibration data),
then int8 and mixed with the IR quantized by NNCF (`--quantizer nncf`) for models without a Loop (NNCF
leaves Loop bodies float, so there it can only lose).
Every candidate is a complete export in a scratch directory beside `--out`; the winner is moved into place
atomically with `pipeline.precision_auto` (candidates, their status, time and metric drop, and why the
winner won) added to its manifest. Timing: OpenVINO on the task metric's first feed (else the bundle's
first testdata sample), resized by `--auto-shape NAME:DIMS`, candidates interleaved round by round, medians.
The feed matters: RBQE's 64² example times int8 at 2× fp32, its 256² crops at 0.6×.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from edgekit.errors import EdgekitError, ValidationFailed

ORDER = ("fp32", "bf16", "int8", "mixed")  # ties go to the earlier (more precise) candidate
AUTO_TARGETS = ("onnx", "openvino")


@dataclass
class Candidate:
    precision: str
    status: str  # passed | failed | skipped
    reason: str | None = None
    ms: float | None = None
    metric: dict | None = None  # the openvino validation's task metric record, where measured
    quantizer: str = "edgekit"  # int8/mixed: who quantized the openvino IR

    @property
    def name(self) -> str:
        return self.precision if self.quantizer == "edgekit" else f"{self.precision}+{self.quantizer}"

    def to_json(self) -> dict:
        out = {"precision": self.precision, "status": self.status}
        if self.quantizer != "edgekit":
            out["quantizer"] = self.quantizer
        for key in ("reason", "ms", "metric"):
            if getattr(self, key) is not None:
                out[key] = round(self.ms, 3) if key == "ms" else getattr(self, key)
        return out


def candidate_precisions(isa: list[str]) -> list[tuple[str, str | None]]:
    """(precision, why it is skipped or None) for every candidate, in ORDER."""
    from edgekit.bench.plan import BF16_ISA

    no_bf16 = None if any(f in isa for f in BF16_ISA) else f"this CPU has none of {', '.join(BF16_ISA)}"
    return [(p, no_bf16 if p in ("bf16", "mixed") else None) for p in ORDER]


def nncf_candidates(candidates: list[Candidate], bundles: dict) -> list[tuple[str, str | None]]:
    """(precision, why skipped or None) for an NNCF-quantized twin of each int8/mixed candidate (skipped
    where that one was); `bundles`: those written so far, whose manifests say whether the graph has a Loop."""
    loops = max((b.manifest.control_flow.get("Loop", 0) for b in bundles.values()), default=0)
    try:
        import nncf  # noqa: F401
        missing = None
    except ImportError:
        missing = "nncf is not installed (pip install 'edgekit[quantize]')"
    loop = f"NNCF does not quantize Loop bodies (the graph has {loops} Loop)" if loops else None
    return [(c.precision, (c.reason if c.status == "skipped" else None) or missing or loop)
            for c in list(candidates) if c.precision in ("int8", "mixed")]


def pick(candidates: list[Candidate]) -> Candidate | None:
    """The fastest candidate that passed validation (ties: the more precise, then edgekit's quantizer);
    None when none passed."""
    passed = [c for c in candidates if c.status == "passed" and c.ms is not None]
    return min(passed, key=lambda c: (c.ms, ORDER.index(c.precision), c.quantizer != "edgekit")) if passed else None


def export_auto(source, out: Path, options, reporter, rounds: int = 15):
    """Export `source` at the fastest validated precision into `out`; returns the Bundle."""
    from edgekit.bundle import Bundle, reap_stale, staged_bundle
    from edgekit.env import cpu_info
    from edgekit.pipeline import export_bundle

    unsupported = [t for t in options.targets if t not in AUTO_TARGETS]
    if unsupported:
        raise EdgekitError(f"--precision auto: times candidates on this machine's OpenVINO; target(s) "
                           f"{', '.join(unsupported)} can't be timed here (export them at a fixed --precision)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reap_stale(out)  # scratch of a killed earlier run
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.auto-{os.getpid()}-", dir=out.parent))
    try:
        candidates, bundles, written = [], {}, {}

        def trial(precision: str, skip: str | None, quantizer: str = "edgekit") -> None:
            candidate = Candidate(precision, "skipped", skip, quantizer=quantizer)
            candidates.append(candidate)
            if skip is not None:
                return
            opts = replace(options, precision=precision, targets=AUTO_TARGETS, force=True, quantizer=quantizer)
            try:
                bundles[candidate.name] = export_bundle(source, scratch / candidate.name, opts, reporter)
                candidate.status = "passed"
            except ValidationFailed as exc:
                candidate.status, candidate.reason = "failed", str(exc).splitlines()[0][:300]
            except EdgekitError as exc:  # e.g. int8 without calibration data
                candidate.reason = str(exc).splitlines()[0][:300]
            if (scratch / candidate.name).exists():
                written[candidate.name] = Bundle.load(scratch / candidate.name)
                candidate.metric = (written[candidate.name].manifest.validation.get("openvino") or {}).get("metric")

        for precision, skip in candidate_precisions(cpu_info()["isa"]):
            trial(precision, skip)
        for precision, skip in nncf_candidates(candidates, written):
            trial(precision, skip, "nncf")
        feed = _timing_feed(source, options, bundles) if bundles else {}
        shape = ", ".join(f"{k} {list(v.shape)}" for k, v in feed.items() if getattr(v, "ndim", 0))
        if bundles:
            with reporter.stage(f"openvino: time {len(bundles)} validated candidate(s) at {shape}, {rounds} rounds"):
                for name, ms in _timed(bundles, feed, rounds).items():
                    next(c for c in candidates if c.name == name).ms = ms
        chosen = pick(candidates)
        if chosen is None:
            reasons = "; ".join(f"{c.name}: {c.reason}" for c in candidates if c.reason)
            raise EdgekitError(f"--precision auto: no candidate passed validation ({reasons})")
        record = {"runtime": "openvino", "rounds": rounds, "feed": shape, "chosen": chosen.precision,
                  **({"quantizer": chosen.quantizer} if chosen.precision in ("int8", "mixed") else {}),
                  "why": _why(chosen, candidates), "candidates": [c.to_json() for c in candidates]}
        with staged_bundle(out, force=options.force) as root:
            for item in (scratch / chosen.name).iterdir():
                os.replace(item, root / item.name)
            bundle = Bundle.load(root)
            bundle.manifest.pipeline["precision_auto"] = record
            bundle.save_manifest()
        return Bundle.load(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _timing_feed(source, options, bundles: dict) -> dict:
    """What the candidates are timed on: the task metric's first feed where the model has one (real data at
    the size it is judged at), else the bundle's first testdata sample; `--auto-shape NAME:DIMS` resizes."""
    from edgekit.bench.plan import bench_feed
    from edgekit.export.inspect import reshaped_feed
    from edgekit.validation.metrics import resolve_metric

    feed = None
    if source.module is not None and callable(getattr(source.module, "task_metric", None)):
        metric = resolve_metric(options.metric, source.module, [])
        feed = dict(metric.feeds[0]) if getattr(metric, "feeds", None) else None
    if feed is None:
        feed = bench_feed(next(iter(bundles.values())), {})
    return reshaped_feed(feed, list(options.auto_shapes), "--auto-shape")


def _timed(bundles: dict, feed: dict, rounds: int) -> dict[str, float]:
    """Median ms per candidate bundle on OpenVINO on `feed`, every round running every candidate once."""
    from edgekit.runtimes import open_runner

    runners = {p: open_runner(b, "openvino") for p, b in bundles.items()}
    times = {p: [] for p in bundles}
    try:
        for p, runner in runners.items():
            runner.run(feed)  # compile-time work and first-call allocations stay out of the figures
        for _ in range(rounds):
            for p, runner in runners.items():
                start = time.perf_counter()
                runner.run(feed)
                times[p].append((time.perf_counter() - start) * 1e3)
    finally:
        for runner in runners.values():
            runner.close()
    return {p: statistics.median(t) for p, t in times.items()}


def _why(chosen: Candidate, candidates: list[Candidate]) -> str:
    others = [c for c in candidates if c is not chosen and c.ms is not None]
    against = ", ".join(f"{c.name} {c.ms:.2f} ms" for c in others) or "no other candidate passed"
    left = [f"{c.name} {c.status}" for c in candidates if c.status != "passed"]
    return (f"fastest validated on this machine's OpenVINO: {chosen.name} {chosen.ms:.2f} ms (vs {against})"
            + (f"; not eligible: {', '.join(left)}" if left else ""))
