"""`edgekit tune`: fit a bundle's run-time knobs to a quality budget and write the choice into its manifest.

data → feeds (+ ground truth) → search.measure on the bundle's runtime → search.choose → re-validate at the
chosen setting → the knob inputs' `default`s and a `tuning` block in manifest.json, written atomically.
Nothing is written when any step fails.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.tuning.knobs import Knob, manifest_knobs
from edgekit.tuning.search import Measurement, choose, measure
from edgekit.ui import SILENT, Reporter

RUNTIME_PREFERENCE = ("openvino", "onnxruntime", "tensorrt", "torch")
DEFAULT_BUDGET = {"psnr": 0.3, "si_sdr": 0.5, "cosine": 0.01}


@dataclass
class TuneData:
    """Feeds to run, how to score one sample's outputs, and where they came from."""

    feeds: list[dict]
    scorer: Callable  # (sample index, outputs, outputs at the costliest setting) -> score
    metric: str
    source: str


def tune_bundle(bundle, *, data: str | None = None, budget: float | None = None, metric: str | None = None,
                runtime: str | None = None, floor: float | None = None, samples: int = 64, validate: bool = True,
                write: bool = True, reporter: Reporter = SILENT, data_flag: str = "--data") -> dict:
    """Tune `bundle` in place; returns the result (curve, choice, oracle). Raises EdgekitError for a bundle
    without knobs, unusable data, or a budget no setting meets; the manifest is then left untouched."""
    where = str(bundle.path)
    knobs = manifest_knobs(bundle.manifest, where)
    runtime = runtime or _default_runtime(bundle)
    from edgekit.runtimes import RUNNERS

    bundle.artifact(RUNNERS.get(runtime).artifact)  # an unknown runtime or a missing artifact fails first
    if budget is not None and budget < 0:
        raise EdgekitError(f"--budget {budget:g}: must be ≥ 0 (the largest drop from the costliest setting)")
    with reporter.stage("tuning data"):
        tune_data = load_tune_data(bundle, knobs, data, metric, samples, data_flag)
    budget = DEFAULT_BUDGET.get(tune_data.metric, 0.0) if budget is None else budget
    from edgekit.runtimes import open_runner

    m = bundle.manifest
    with reporter.stage(f"{runtime}: {len(tune_data.feeds)} samples × every knob setting") as stage:
        with open_runner(bundle, runtime) as runner:
            measurement = measure(runner.run, tune_data.feeds, knobs, m.inputs, tune_data.scorer,
                                  stage.progress)
    chosen = choose(measurement, budget, floor)
    if chosen is None:
        best = max(measurement.rows, key=lambda r: r.metric)
        raise EdgekitError(f"{where}: no knob setting reaches {tune_data.metric} ≥ {floor:g} within {budget:g} of the "
                           f"costliest setting (best: {best.metric:.4f} at {best.setting}); lower --floor")
    result = _result(bundle, knobs, runtime, tune_data, budget, floor, measurement, chosen)
    return apply_tuning(bundle, result, reporter, validate=validate, write=write)


def apply_tuning(bundle, result: dict, reporter: Reporter = SILENT, validate: bool = True, write: bool = True) -> dict:
    """Re-validate `bundle` at the tuned setting of `result` and write it as the knobs' defaults (atomically).
    `result` may come from the bundle this one was re-exported from (`export --keep-exits auto`)."""
    runtime, setting = result["runtime"], result["chosen"]["setting"]
    if validate:
        result["validation"] = _revalidate(bundle, runtime, setting, reporter)
        if result["validation"]["status"] == "failed":
            raise EdgekitError(f"{bundle.path}: {runtime} fails validation at the tuned setting {setting}: "
                               f"{result['validation'].get('failures', ['?'])[0]}")
    if write:
        _write(bundle, manifest_knobs(bundle.manifest, str(bundle.path)), result)
    return result


def _default_runtime(bundle) -> str:
    from edgekit.runtimes import runtimes_for

    have = runtimes_for(bundle)
    return next(r for r in RUNTIME_PREFERENCE if r in have)


def load_tune_data(bundle, knobs: list[Knob], data: str | None, metric: str | None, samples: int,
                   flag: str = "--data") -> TuneData:
    """`--data PATH` (scored by output similarity to the costliest setting: cosine, or --metric FILE.py:fn),
    or without it the model's own task_metric() feeds and ground truth (zoo models only: a bundle is data,
    so edgekit rebuilds the model only from its installed zoo)."""
    from edgekit.validation.metrics import resolve_metric

    m = bundle.manifest
    if data is None:
        spec = m.source.get("spec", "")
        if m.source.get("kind") != "zoo" or not str(spec).startswith("zoo:"):
            raise EdgekitError(f"{bundle.path}: pass --data PATH: the source ({spec}) is not a zoo model, and a "
                               "bundle's own code is never run to make tuning data")
        from edgekit.sources import resolve_source

        module = resolve_source(spec).module
        task = resolve_metric(metric, module, [])
        if not hasattr(task, "targets"):
            raise EdgekitError(f"{spec}: has no task_metric() with ground truth; pass --data PATH")
        feeds, targets = _unique(task.feeds, task.targets, knobs)
        return TuneData(feeds[:samples], lambda i, out, ref: task.score(out, targets[i]), task.name,
                        f"{spec} task_metric()")
    if metric in ("psnr", "si_sdr"):
        raise EdgekitError(f"--metric {metric} needs ground truth, which {flag} feeds lack: use --metric cosine or "
                           "FILE.py:fn(reference_outputs, outputs), or drop --data on a zoo model")
    from edgekit.bench.plan import bench_feed
    from edgekit.calibration.datasets import load_calibration
    from edgekit.feedfiles import is_feed_path, load_feed_file

    example = bench_feed(bundle, {})
    path_text, sep, _ = str(data).rpartition(":")
    if not (sep and path_text.endswith(".py")) and not Path(data).exists():
        raise EdgekitError(f"{flag} {data}: does not exist")
    if is_feed_path(Path(data)):  # .npz/.npy files or folders of them: every layout edgekit.feedfiles reads
        feeds = load_feed_file(Path(data), m.inputs, flag, defaults=example)[:samples]
    else:  # images, wav files, file.py:fn: the calibration loaders
        feeds = load_calibration(str(data), m.inputs, example, samples)
    if not feeds:
        raise EdgekitError(f"{flag} {data}: no samples")
    similarity = resolve_metric(metric or "cosine", None, feeds)
    return TuneData(feeds, lambda i, out, ref: similarity.fn(ref, out), similarity.name, str(data))


def _unique(feeds, targets, knobs):
    """Drop feeds that differ only in knob values (a task metric may list one image at two thresholds)."""
    names = {k.input for k in knobs}
    seen, out_feeds, out_targets = set(), [], []
    for feed, target in zip(feeds, targets):
        key = _digest({k: v for k, v in feed.items() if k not in names})
        if key not in seen:
            seen.add(key)
            out_feeds.append(feed)
            out_targets.append(target)
    return out_feeds, out_targets


def _digest(feeds) -> str:
    digest = hashlib.sha256()
    for feed in feeds if isinstance(feeds, list) else [feeds]:
        for name in sorted(feed):
            value = np.ascontiguousarray(feed[name])
            digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def _result(bundle, knobs, runtime, data: TuneData, budget, floor, measurement: Measurement, chosen) -> dict:
    ref = measurement.reference
    return {
        "bundle": str(bundle.path), "runtime": runtime, "metric": data.metric, "budget": budget, "floor": floor,
        "data": {"source": data.source, "samples": measurement.samples, "sha256": _digest(data.feeds)},
        "knobs": [k.to_json() for k in knobs],
        "previous": {k.input: _default(bundle, k.input) for k in knobs},
        "chosen": chosen.to_json(), "reference": ref.to_json(), "oracle": measurement.oracle.to_json(),
        "speedup": ref.expected_latency_ms / chosen.expected_latency_ms if chosen.expected_latency_ms else None,
        "curve": [r.to_json() for r in measurement.rows], "calls": measurement.calls,
        "date": datetime.date.today().isoformat(),
    }


def _default(bundle, name: str):
    return next((s.default for s in bundle.manifest.inputs if s.name == name), None)


def _revalidate(bundle, runtime: str, setting: dict, reporter) -> dict:
    from edgekit.validation.parity import revalidate_bundle

    reference = bundle.manifest.reference.get("runtime", "torch")
    if runtime == reference:
        return {"status": "skipped", "reason": f"{runtime} is the reference"}
    results = revalidate_bundle(bundle, [runtime], 4, None, [], dict(setting), reporter)
    return results[runtime].to_json()


def _write(bundle, knobs: list[Knob], result: dict) -> None:
    from dataclasses import replace

    chosen = result["chosen"]["setting"]
    m = bundle.manifest
    m.inputs = [replace(s, default=chosen[s.name]) if s.name in chosen else s for s in m.inputs]
    m.tuning = {k: v for k, v in result.items() if k not in ("bundle", "knobs")}
    bundle.save_manifest()

