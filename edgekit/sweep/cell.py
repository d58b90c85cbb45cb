"""What a sweep cell's stages share (stages.py): its metric with the cell's scalar feeds, the unpruned
reference, the benchmark input at the cell's shape, the timed run (Python child or native runner), the
metric through a runtime against the baseline stage's reference, and the check that a bundle is visible."""

from __future__ import annotations

import math
import os
import socket
import sys
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError


def sweep_metric(source, spec: str | None, feeds: dict):
    """The metric for `spec` on `source`, with the cell's scalar feeds (threshold, num_steps) applied to
    its inputs: the accuracy of a threshold is measured at that threshold."""
    from dataclasses import replace

    from edgekit.validation.metrics import resolve_metric

    samples = list(source.validation_feeds) or [source.example_feed()]
    metric = resolve_metric(spec, source.module, samples)
    return replace(metric, feeds=[override(f, feeds) for f in metric.feeds]) if feeds else metric


def reference_runner(source):
    """The fp32 reference of an unpruned source: its module eagerly (ONNX sources: ONNX Runtime)."""
    from edgekit.specs import TensorSpec

    outputs = [TensorSpec(n, (), "float32") for n in source.output_names or ["output"]]
    if source.kind == "onnx":
        from edgekit.runtimes.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(source.onnx_path, source.inputs + [s for s, _ in source.pinned], outputs,
                                 fixed={s.name: v for s, v in source.pinned})
    from edgekit.runtimes.torch import TorchRunner

    module = source.module if source.module is not None else source.exported.module()
    return TorchRunner(module, source.inputs, outputs)


def bench_input(bundle, shape: str | None, feeds: dict) -> dict[str, np.ndarray]:
    """The bundle's first testdata sample with the cell's scalar feeds, its tensor input tiled/cropped to
    `shape`. Raises EdgekitError for a shape the model cannot take (rank, static dims)."""
    from edgekit.bench.plan import bench_feed
    from edgekit.sweep.checks import parse_shape

    feed = bench_feed(bundle, feeds)
    if not shape:
        return feed
    name, dims = parse_shape(shape)
    specs = {s.name: s for s in bundle.manifest.inputs}
    if name is None:
        name = next((s.name for s in bundle.manifest.inputs if s.shape), None)
    spec = specs.get(name)
    if spec is None or not spec.shape:
        raise EdgekitError(f"shape {shape}: the model has no tensor input {name!r} (inputs: {', '.join(specs)})")
    if len(dims) != len(spec.shape):
        raise EdgekitError(f"shape {shape}: input {name!r} has rank {len(spec.shape)} {list(spec.shape)}")
    for axis, (want, have) in enumerate(zip(dims, spec.shape)):
        if isinstance(have, int) and want != have:
            raise EdgekitError(f"shape {shape}: input {name!r} axis {axis} is fixed at {have} {list(spec.shape)}")
    value = np.asarray(feed[name])
    reps = [math.ceil(d / s) for d, s in zip(dims, value.shape)]
    # tiling the real sample (rather than noise) keeps data-dependent paths (early exits) realistic
    feed[name] = np.ascontiguousarray(np.tile(value, reps)[tuple(slice(0, d) for d in dims)])
    return feed


def bench_cell(bundle, case, payload: dict) -> dict:
    from edgekit.bench.parent import measure_in_child
    from edgekit.bench.stats import BenchSettings

    settings = payload["bench"]
    feed = bench_input(bundle, payload["shape"], payload["feeds"])
    if settings.get("native") and case.runtime == "openvino":  # the C++/C runner's --bench, not Python's
        from edgekit.native.bench import native_sweep_row

        return native_sweep_row(bundle, settings, payload["feeds"], feed, payload.get("verify", True))
    # Ray sets OMP_NUM_THREADS to a task's num_cpus (1 for our num_cpus=0 device tasks); the child would
    # inherit it and PyTorch would time on one thread. Benchmarks use the runtimes' defaults, as `edgekit bench`.
    saved = os.environ.pop("OMP_NUM_THREADS", None) if "ray" in sys.modules else None
    try:
        result = measure_in_child(bundle.path, case, BenchSettings(settings["warmup"], settings["iters"], None,
                                                                   settings["threads"], 1), feed)
    finally:
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved
    if not result:
        raise EdgekitError(f"{case.runtime} benchmark {result.status}: {result.reason}")
    return result.to_json()


def evaluate(metric, run, baseline: dict):
    from edgekit.validation.metrics import TaskMetric

    if isinstance(metric, TaskMetric):
        return metric.evaluate(run, baseline=baseline["baseline"])
    stored = np.load(baseline["reference"])
    outputs = [{} for _ in metric.feeds]
    for name in stored.files:
        index, _, output = name.partition("/")
        outputs[int(index)][output] = stored[name]
    by_feed = {id(f): o for f, o in zip(metric.feeds, outputs)}  # evaluate() passes these same feed objects
    return metric.evaluate(run, reference=lambda feed: by_feed[id(feed)], baseline=baseline["baseline"])


def override(feed: dict, values: dict) -> dict:
    out = dict(feed)
    for name, value in values.items():
        if name in out:
            out[name] = np.asarray(value, dtype=np.asarray(out[name]).dtype).reshape(np.shape(out[name]))
    return out


def visible(path: str) -> str:
    if not Path(path).is_dir():
        raise EdgekitError(f"{path}: not visible on {socket.gethostname()} (with Ray on several hosts the "
                           f"sweep's cache must be on a filesystem every node mounts at the same path)")
    return path


def cell_feeds(feeds: dict, tune: dict | None) -> dict:
    """The scalar feeds a cell is measured at: the tuned setting, then the cell's own `feeds` axis."""
    return {**(tune or {}).get("setting", {}), **feeds}
