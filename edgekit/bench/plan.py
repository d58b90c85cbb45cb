"""What `edgekit bench` measures: the rows (each runtime × artifact precision × mode × precision hint) and
the feed they all time (the bundle's first testdata sample, `--feed` overrides, `--batch` tiling).
"""

from __future__ import annotations

import numpy as np

from edgekit.bench.stats import BenchCase
from edgekit.errors import EdgekitError

# CPU flags with native bf16 math; on these OpenVINO's CPU plugin runs INFERENCE_PRECISION_HINT=bf16 fast.
BF16_ISA = ("avx512_bf16", "amx_bf16")


def bench_feed(bundle, overrides: dict, batch: int | None = None) -> dict[str, np.ndarray]:
    """The feed to time: the bundle's first testdata sample (or one made from the input specs), with the
    knob values `edgekit tune` chose and then `--feed` scalar overrides applied and inputs with a dynamic first dim tiled to `batch`.

    Raises EdgekitError for an unknown `--feed` name, or `batch` on a static batch dim.
    """
    from edgekit.specs import apply_feeds
    from edgekit.tuning.knobs import tuned_defaults
    from edgekit.validation.testdata import read_testdata

    specs = bundle.manifest.inputs
    stored = read_testdata(bundle.path)
    feed = stored[0][0] if stored else feed_from_specs(specs, batch or 1, bundle.path)
    feed = apply_feeds(feed, {**tuned_defaults(bundle.manifest), **overrides}, specs)
    return tile_batch(feed, specs, batch) if batch else feed


def feed_from_specs(specs, batch: int, where) -> dict[str, np.ndarray]:
    """A deterministic feed from the specs alone: normal floats, zero ints, scalar defaults."""
    from edgekit.specs import np_dtype

    rng = np.random.default_rng(0)
    feed = {}
    for spec in specs:
        named = [d for i, d in enumerate(spec.shape) if isinstance(d, str) and i > 0]
        if named:
            raise EdgekitError(f"{where}: no testdata/ and input {spec.name!r} has dynamic dims "
                               f"({', '.join(named)}); re-export the bundle to store testdata")
        shape = tuple(batch if isinstance(d, str) else d for d in spec.shape)
        if not shape:
            value = np.asarray(spec.default if spec.default is not None else 0, dtype=np_dtype(spec.dtype))
        elif spec.is_float:
            value = rng.standard_normal(shape).astype(np_dtype(spec.dtype))
        else:
            value = np.zeros(shape, dtype=np_dtype(spec.dtype))
        feed[spec.name] = value
    return feed


def tile_batch(feed: dict[str, np.ndarray], specs, batch: int) -> dict[str, np.ndarray]:
    """Repeat the sample along axis 0 to `batch` for inputs whose first dim is dynamic."""
    ranked = [s for s in specs if s.shape]
    dynamic = [s for s in ranked if isinstance(s.shape[0], str)]
    static = [s for s in ranked if not isinstance(s.shape[0], str) and s.shape[0] != batch]
    if not dynamic and static:
        s = static[0]
        raise EdgekitError(f"--batch {batch}: input {s.name!r} has a static batch dimension {s.shape[0]} "
                           f"(shape {list(s.shape)}); re-export with --dynamic {s.name}:0 to benchmark other batches")
    if not ranked:
        raise EdgekitError(f"--batch {batch}: the model has only scalar inputs, nothing to batch")
    out = dict(feed)
    for spec in dynamic:
        value = np.asarray(feed[spec.name])
        out[spec.name] = np.take(value, np.arange(batch) % value.shape[0], axis=0)
    return out


def plan_cases(bundle, runtimes: list[str], device: str = "CPU", precisions: list[str] | None = None,
               isa: list[str] | None = None, static_shapes: bool = False) -> list[BenchCase]:
    """The rows to measure: each runtime × each artifact precision; OpenVINO also in THROUGHPUT mode, with
    `static_shapes` compiled at the feed's shapes (mode "static"), and on CPUs with bf16 math (or with
    `precisions`) at each requested inference precision hint."""
    from edgekit.runtimes import RUNNERS
    from edgekit.runtimes.openvino import INFERENCE_PRECISION

    unknown = [p for p in precisions or [] if p not in INFERENCE_PRECISION]
    if unknown:
        raise EdgekitError(f"--precision {','.join(unknown)}: OpenVINO precision hints are {', '.join(INFERENCE_PRECISION)}")
    cases: list[BenchCase] = []
    for runtime in runtimes:
        key = RUNNERS.get(runtime).artifact
        entry = bundle.manifest.artifacts.get(key)
        if entry is None:
            have = ", ".join(bundle.manifest.artifacts) or "none"
            cases.append(BenchCase(runtime, "-", unavailable=f"the bundle has no {key} artifact (it has: {have})"))
            continue
        entries = entry if isinstance(entry, list) else [entry]
        by_precision = {e.get("precision", "fp32"): e for e in entries}
        for precision, e in by_precision.items():
            size = e["size_bytes"] / 1e6 if "size_bytes" in e else None
            options = {"precision": precision} if runtime == "tensorrt" and len(by_precision) > 1 else {}
            path = e.get("path")
            if runtime != "openvino":
                cases.append(BenchCase(runtime, precision, options=options, size_mb=size, artifact=path))
                continue
            ov = {"device": device}
            cases.append(BenchCase(runtime, precision, options=ov, size_mb=size, artifact=path))
            cases.append(BenchCase(runtime, precision, "throughput", {**ov, "hint": "THROUGHPUT"}, size_mb=size,
                                   artifact=path))
            if static_shapes:
                cases.append(BenchCase(runtime, precision, "static", {**ov, "static_shapes": True}, size_mb=size,
                                       artifact=path))
            cases.extend(_precision_hint_cases(precision, size, ov, device, precisions, isa, path))
    return cases


def _precision_hint_cases(artifact_precision, size, options, device, precisions, isa, path) -> list[BenchCase]:
    has_bf16 = any(f in (isa or []) for f in BF16_ISA)
    wanted = precisions if precisions is not None else (["bf16"] if has_bf16 and device == "CPU" else [])
    cases = []
    for hint in dict.fromkeys(p for p in wanted if p != artifact_precision):
        reason = None
        if hint == "bf16" and device == "CPU" and not has_bf16:
            reason = f"this CPU has none of {', '.join(BF16_ISA)}"
        cases.append(BenchCase("openvino", hint, options={**options, "precision": hint}, validate=True,
                               size_mb=size, unavailable=reason, artifact=path))
    return cases
