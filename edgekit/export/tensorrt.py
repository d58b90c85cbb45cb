"""ONNX → TensorRT engines, one plain engine file per compute capability (`model.sm86.engine`).

TensorRT 11 and TensorRT-RTX take precision from the graph, not from builder flags: fp16 engines are
built from an fp16 copy of the ONNX (`onnx_fp16_from_onnx`), int8 engines from a graph with Q/DQ nodes.
TensorRT-RTX builds without a GPU for named compute capabilities; `trt_compat` hides the flavour.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from edgekit.bundle import sha256_file
from edgekit.errors import EdgekitError, ExportError
from edgekit.export.controlflow import iter_nodes, load_onnx
from edgekit.export.fp16 import onnx_fp16_from_onnx
from edgekit.export.trt_compat import builder_name, import_tensorrt, names_archs, parse_arch_list

ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
# A dynamic dim with example size e gets the profile (min, opt, max) = (1, e, 4e); with no example,
# e = 64. TensorRT sizes activation memory for max, so pass real examples or hints for big models.
DEFAULT_EXAMPLE_DIM = 64
PROFILE_MAX_FACTOR = 4



# --- engines ------------------------------------------------------------------------------------------

def engines_from_onnx(ctx) -> list[dict]:
    """The `tensorrt` export target: one engine per arch in `ctx.options["trt_arch"]` (default: the current
    GPU, else SM86+SM89). Options: `trt_shapes` (name → (min, opt, max)), `trt_example_shapes`
    (name → shape), `trt_timing_cache` (path; full TensorRT only)."""
    trt = import_tensorrt()
    archs = parse_arch_list(ctx.options.get("trt_arch"), trt)
    options = dict(shape_hints=ctx.options.get("trt_shapes"), example_shapes=ctx.options.get("trt_example_shapes"),
                   timing_cache=ctx.options.get("trt_timing_cache"))
    with tempfile.TemporaryDirectory(prefix="edgekit-trt-") as tmp:
        graph = _graph_for_precision(Path(ctx.onnx_path), ctx.precision, Path(tmp))
        entries = []
        for arch in archs:
            ctx.log(f"tensorrt: building {arch} ({ctx.precision}) with {builder_name(trt)}")
            entry = _build_engine(trt, graph, ctx.root / f"model.{arch.lower()}.engine", arch, ctx.precision,
                                  **options)
            ctx.log(f"tensorrt: {entry['path']} {entry['size_bytes'] / 1e6:.1f} MB in {entry['build_seconds']:.1f} s")
            if "profile_note" in entry:
                ctx.log(f"tensorrt: {arch}: {entry['profile_note']}")
            entries.append(entry)
    return entries


def engine_from_onnx(onnx_path: Path, engine_path: Path, compute_capability: str, precision: str = "fp32",
                     timing_cache: Path | None = None, shape_hints: dict | None = None,
                     example_shapes: dict | None = None) -> dict:
    """Build one engine for `compute_capability` ("SM86") and return its manifest entry.

    precision: "fp32"; "fp16" (the graph is converted with `onnx_fp16_from_onnx` first); "int8" (the graph
    must carry Q/DQ nodes). shape_hints: input name → (min, opt, max) shapes for dynamic dims; otherwise
    example_shapes (name → shape) or DEFAULT_EXAMPLE_DIM give (1, e, 4e) per dynamic dim.
    timing_cache: a file read before and written after the build (TensorRT-RTX has none: ignored).
    Raises ExportError (nothing written) when TensorRT cannot parse or build the graph, EdgekitError for a
    bad arch or precision, BackendUnavailable when no TensorRT is installed.
    """
    trt = import_tensorrt()
    archs = parse_arch_list(compute_capability, trt)
    if len(archs) != 1:
        raise EdgekitError(f"tensorrt: one engine per compute capability; got {', '.join(archs)} "
                           "(use engines_from_onnx for several)")
    arch = archs[0]
    with tempfile.TemporaryDirectory(prefix="edgekit-trt-") as tmp:
        graph = _graph_for_precision(Path(onnx_path), precision, Path(tmp))
        return _build_engine(trt, graph, Path(engine_path), arch, precision, timing_cache=timing_cache,
                             shape_hints=shape_hints, example_shapes=example_shapes)


def layers_from_onnx(onnx_path: Path) -> dict[str, int]:
    """Parse only (no build, no GPU): TensorRT layer type → count, If/Loop bodies included, most first."""
    trt = import_tensorrt()
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, Path(onnx_path))
    return _layer_histogram(network)


def _graph_for_precision(onnx_path: Path, precision: str, tmp: Path) -> Path:
    if precision not in ENGINE_PRECISIONS:
        raise EdgekitError(f"tensorrt: precision {precision!r} is not one of {', '.join(ENGINE_PRECISIONS)}")
    if precision == "fp16":
        return onnx_fp16_from_onnx(onnx_path, tmp / "model.fp16.onnx")
    if precision == "int8":
        model = load_onnx(onnx_path, load_external_data=False)
        if not any(n.op_type == "QuantizeLinear" for n in iter_nodes(model.graph)):
            raise ExportError(f"tensorrt: int8 needs a Q/DQ graph and {onnx_path.name} has no QuantizeLinear "
                              "(quantize it first: `edgekit quantize`)")
    return onnx_path


def _build_engine(trt, onnx_path: Path, engine_path: Path, arch: str, precision: str, timing_cache=None,
                  shape_hints=None, example_shapes=None) -> dict:
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_path)
    config = builder.create_builder_config()
    if names_archs(trt):
        config.num_compute_capabilities = 1
        config.set_compute_capability(getattr(trt.ComputeCapability, arch), 0)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        # TF32 (on by default) rounds conv/matmul inputs to 10 mantissa bits, ~1e-3 off: past fp32 parity
        config.clear_flag(trt.BuilderFlag.TF32)
    profile_shapes = _profile_shapes(network, shape_hints or {}, example_shapes or {})
    if profile_shapes:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profile_shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    # TensorRT-RTX has no build-time autotuning, so its timing cache calls are deprecated no-ops.
    cache_path = Path(timing_cache) if timing_cache and not names_archs(trt) else None
    if cache_path:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        reason = logger.errors() or "no reason given"
        dynamic = {n: s for n, s in profile_shapes.items() if s[0] != s[2]}
        if dynamic and not shape_hints:
            # TensorRT-RTX 1.7 fails inside Myelin on RBQE's nested If for any shape range but builds it for
            # one fixed shape. Without a user profile (--trt-shape), build that and say so, rather than fail.
            fixed = {n: (opt, opt, opt) for n, (_, opt, _) in profile_shapes.items()}
            entry = _build_engine(trt, onnx_path, engine_path, arch, precision, timing_cache, fixed, example_shapes)
            entry["profile_note"] = (f"a dynamic profile failed ({reason[:200]}); built for the fixed example "
                                     f"shape instead: pass --trt-shape NAME:MIN,OPT,MAX to choose the shapes")
            return entry
        raise ExportError(f"tensorrt: building {onnx_path.name} for {arch} failed: {reason}")
    _write_atomic(engine_path, memoryview(serialized))
    if cache_path:
        _write_atomic(cache_path, memoryview(config.get_timing_cache().serialize()))
    return {
        "path": engine_path.name,
        "sha256": sha256_file(engine_path),
        "builder": builder_name(trt),
        "compute_capability": arch,
        "precision": precision,
        "build_seconds": round(seconds, 3),
        "size_bytes": engine_path.stat().st_size,
        "layers": _layer_histogram(network),
        "profile": {name: {"min": list(lo), "opt": list(opt), "max": list(hi)}
                    for name, (lo, opt, hi) in profile_shapes.items()},
    }


def _logger(trt):
    """A TensorRT logger that keeps errors for our messages instead of printing every warning."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[tuple] = []

        def log(self, severity, msg):
            self.messages.append((severity, msg))

        def errors(self) -> str:
            bad = (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR)
            return " | ".join(" ".join(m.split()) for s, m in self.messages if s in bad)[-600:]

    return Logger()


def _parse(trt, builder, logger, onnx_path: Path):
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file, not parse(bytes): it resolves external data next to the file
    if not parser.parse_from_file(str(onnx_path)):
        problems = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            where = f"node {error.node_name() or '#' + str(error.node())!r} ({error.node_operator() or '?'})"
            problems.append(f"{where}: {' '.join(error.desc().split())}")
        raise ExportError(f"tensorrt: cannot parse {onnx_path.name}: " + "; ".join(problems or [logger.errors()]))
    return network, parser  # the parser owns the weights: keep it alive as long as the network


def _layer_histogram(network) -> dict[str, int]:
    # num_layers counts the layers inside If branches and Loop bodies too (one flat network in TensorRT)
    counts = Counter(network.get_layer(i).type.name for i in range(network.num_layers))
    return dict(counts.most_common())


def _profile_shapes(network, shape_hints: dict, example_shapes: dict) -> dict[str, tuple]:
    """(min, opt, max) for every network input with a dynamic dim; static inputs need no profile."""
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    unknown = sorted(set(shape_hints) - set(names))
    if unknown:
        raise EdgekitError(f"tensorrt: shape hints for {', '.join(unknown)}: no such input "
                           f"(inputs: {', '.join(names)})")
    shapes = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(tensor.shape)
        if tensor.is_shape_tensor:
            raise ExportError(f"tensorrt: input {tensor.name!r} is used as a shape (a shape tensor); edgekit "
                              "does not build profiles for shape-tensor inputs yet")
        if tensor.name in shape_hints:
            lo, opt, hi = (tuple(int(d) for d in s) for s in shape_hints[tensor.name])
            for label, shape in (("min", lo), ("opt", opt), ("max", hi)):
                if len(shape) != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, shape)):
                    raise EdgekitError(f"tensorrt: shape hint {label}={list(shape)} for {tensor.name!r} does not "
                                       f"fit the model's input shape {list(dims)}")
            shapes[tensor.name] = (lo, opt, hi)
        elif any(d < 0 for d in dims):
            example = example_shapes.get(tensor.name) or [DEFAULT_EXAMPLE_DIM if d < 0 else d for d in dims]
            if len(example) != len(dims):
                raise EdgekitError(f"tensorrt: example shape {list(example)} for {tensor.name!r} does not have "
                                   f"the model's rank {len(dims)}")
            lo = tuple(1 if d < 0 else d for d in dims)
            opt = tuple(int(e) if d < 0 else d for d, e in zip(dims, example))
            hi = tuple(int(e) * PROFILE_MAX_FACTOR if d < 0 else d for d, e in zip(dims, example))
            shapes[tensor.name] = (lo, opt, hi)
    return shapes


def _write_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
