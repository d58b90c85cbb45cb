"""`edgekit inspect`: what is inside a bundle or an ONNX file — inputs/outputs, op histogram, If/Loop
counts through subgraphs, sizes, and each artifact's own facts (engine arch, precision, layers)."""

from __future__ import annotations

from pathlib import Path

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.export.controlflow import control_flow_counts, load_onnx, max_if_depth, op_histogram


def inspect_onnx(path: Path) -> dict:
    """Facts about one ONNX file (weights are not loaded)."""
    from edgekit.pipeline import output_specs
    from edgekit.sources.model import onnx_value_spec

    model = load_onnx(Path(path), load_external_data=False)
    from edgekit.export.surface import walk_graphs

    initializers = {i.name for i in model.graph.initializer}
    params = 0
    for _, graph in walk_graphs(model.graph):  # If branches and Loop bodies hold their own weights too
        for init in graph.initializer:
            count = 1
            for d in init.dims:
                count *= d
            params += count
    data = Path(path).with_name(Path(path).name + ".data")
    return {
        "path": str(path),
        "size_bytes": Path(path).stat().st_size + (data.stat().st_size if data.exists() else 0),
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [onnx_value_spec(v).to_json() for v in model.graph.input if v.name not in initializers],
        "outputs": [s.to_json() for s in output_specs(model)],
        "parameters": params,
        "control_flow": control_flow_counts(model),
        "if_nesting_depth": max_if_depth(model.graph),
        "ops": op_histogram(model),
    }


def inspect_path(path: Path) -> dict:
    """Inspect a bundle directory or an `.onnx` file."""
    path = Path(path)
    if path.is_dir():
        bundle = Bundle.load(path)
        m = bundle.manifest
        info = {"bundle": str(path), "manifest": m.to_json()}
        if "onnx" in m.artifacts:
            info["onnx"] = inspect_onnx(bundle.artifact_path("onnx"))
        return info
    if path.suffix == ".onnx":
        return {"onnx": inspect_onnx(path)}
    if not path.exists():
        raise EdgekitError(f"{path}: does not exist")
    raise EdgekitError(f"{path}: not a bundle directory or an .onnx file")


PROFILED_RUNTIMES = ("openvino",)


def profile_boundaries(path: Path, runtime: str, overrides: dict, rounds: int, threads: int | None,
                       shapes: list[str] | None = None) -> dict:
    """Profile the control-flow boundaries of a bundle (its OpenVINO IR, else its ONNX) or an ONNX file on
    `runtime`, fed the bundle's first testdata sample with every knob at its costliest value (the deepest
    path) and `overrides` on top; `shapes` (NAME:1x1x256x256) resize inputs to a deployment's size."""
    from edgekit.bench.plan import bench_feed, feed_from_specs
    from edgekit.runtimes.openvino_boundary import boundary_profile
    from edgekit.specs import apply_feeds
    from edgekit.tuning.knobs import Knob, costliest_setting

    if runtime not in PROFILED_RUNTIMES:
        raise EdgekitError(f"--runtime {runtime}: boundary profiles are for {', '.join(PROFILED_RUNTIMES)}")
    path = Path(path)
    if path.is_dir():
        bundle = Bundle.load(path)
        knobs = [Knob.from_json(k) for k in (bundle.manifest.knobs or [])]
        feed = bench_feed(bundle, {**costliest_setting(knobs), **overrides})
        key = "openvino" if "openvino" in bundle.manifest.artifacts else "onnx"
        target = bundle.artifact_path(key)
    else:
        from edgekit.sources.model import onnx_value_spec

        model = load_onnx(path, load_external_data=False)
        initializers = {i.name for i in model.graph.initializer}
        specs = [onnx_value_spec(v) for v in model.graph.input if v.name not in initializers]
        feed = apply_feeds(feed_from_specs(specs, 1, path), overrides, specs)
        target = path
    feed = reshaped_feed(feed, shapes or [])
    return {"artifact": str(target), "feed": {k: v.tolist() for k, v in feed.items() if v.ndim == 0},
            "shapes": {k: list(v.shape) for k, v in feed.items() if v.ndim},
            **boundary_profile(target, feed, rounds=rounds, threads=threads)}


def reshaped_feed(feed: dict, shapes: list[str], flag: str = "--shape") -> dict:
    """`feed` with each `--shape NAME:DIMS` input refilled to DIMS: the sample's own values, repeated
    (np.resize), so the value range stays the model's; the rank must stay the same."""
    import numpy as np

    feed = dict(feed)
    for text in shapes:
        name, _, dims = text.partition(":")
        parts = dims.split("x") if dims else []
        if not name or not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise EdgekitError(f"{flag} {text!r}: expected NAME:DIMS, e.g. image:1x1x256x256")
        if name not in feed:
            raise EdgekitError(f"{flag} {text!r}: the model has no input {name!r} (inputs: {', '.join(feed)})")
        shape = tuple(int(p) for p in parts)
        if len(shape) != feed[name].ndim:
            raise EdgekitError(f"{flag} {text!r}: input {name!r} has rank {feed[name].ndim}, not {len(shape)}")
        feed[name] = np.resize(feed[name], shape)
    return feed
