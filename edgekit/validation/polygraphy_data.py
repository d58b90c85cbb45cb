"""A bundle's testdata in NVIDIA Polygraphy's formats, so a device with TensorRT (or ONNX Runtime) and
Polygraphy but without edgekit can check the bundle's model against the PyTorch reference:

    polygraphy run model.onnx --onnxrt --load-inputs inputs.json --load-outputs outputs.json --atol A --rtol R

`inputs.json` is a list of feed dicts (Polygraphy's `--load-inputs` format), `outputs.json` a `RunResults`
with one runner, `edgekit-reference`, one iteration per sample. Both are written with Polygraphy's own JSON
encoder (extra `edgekit[polygraphy]`). Called by `edgekit testdata BUNDLE --format polygraphy`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, missing_extra

REFERENCE_RUNNER = "edgekit-reference"
INPUTS_FILE = "inputs.json"
OUTPUTS_FILE = "outputs.json"
# DESIGN.md §7 fp32: |got - ref| <= 1e-4 + 1e-3·|ref|. Polygraphy's element-wise check passes an element
# when it is within atol OR rtol, which these bounds (a superset of ours) keep.
DEFAULT_ATOL, DEFAULT_RTOL = 1e-4, 1e-3


@dataclass
class PolygraphyData:
    inputs: Path
    outputs: Path
    samples: int
    commands: dict[str, list[str]] = field(default_factory=dict)  # runner ("onnxrt", "trt") → argv

    def to_json(self) -> dict:
        return {"inputs": str(self.inputs), "outputs": str(self.outputs), "samples": self.samples,
                "commands": {k: shlex.join(v) for k, v in self.commands.items()}}


def write_polygraphy_files(samples: list[tuple[dict, dict]], out: Path) -> tuple[Path, Path]:
    """Write (inputs, reference outputs) pairs as Polygraphy input data and RunResults under `out`."""
    try:
        from polygraphy.comparator import IterationResult, RunResults
        from polygraphy.json import save_json
    except ImportError:
        raise missing_extra("polygraphy", "polygraphy", "polygraphy") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # np.array(order="C"), not np.ascontiguousarray: that one turns a scalar (threshold, exit_index) into [1]
    feeds = [{k: np.array(v, order="C") for k, v in inputs.items()} for inputs, _ in samples]
    iterations = [IterationResult({k: np.array(v, order="C") for k, v in outputs.items()},
                                  runner_name=REFERENCE_RUNNER) for _, outputs in samples]
    save_json(feeds, str(out / INPUTS_FILE), description="input data")
    RunResults([(REFERENCE_RUNNER, iterations)]).save(str(out / OUTPUTS_FILE))
    return out / INPUTS_FILE, out / OUTPUTS_FILE


def polygraphy_from_bundle(bundle, out: Path) -> PolygraphyData:
    """The bundle's testdata as Polygraphy files under `out`, and the `polygraphy run` commands that check
    its model.onnx with ONNX Runtime (`onnxrt`) and with TensorRT (`trt`, what a Jetson user runs)."""
    from edgekit.validation.testdata import read_testdata

    samples = read_testdata(bundle.path)
    if not samples:
        raise EdgekitError(f"{bundle.path}: no testdata/ (export it with validation on to store reference I/O)")
    inputs, outputs = write_polygraphy_files(samples, out)
    model = bundle.artifact_path("onnx")
    atol, rtol = _tolerance(bundle)
    base = ["polygraphy", "run", str(model)]
    check = ["--load-inputs", str(inputs), "--load-outputs", str(outputs), "--atol", f"{atol:g}", "--rtol", f"{rtol:g}"]
    commands = {"onnxrt": base + ["--onnxrt"] + check,
                "trt": base + ["--trt"] + _trt_profile(samples) + check}
    return PolygraphyData(inputs, outputs, len(samples), commands)


def _tolerance(bundle) -> tuple[float, float]:
    """The tolerance the bundle's ONNX Runtime validation used (an int8 graph's element-wise bounds are not
    gating, DESIGN.md §7: the fp32 defaults are then printed for the user to adjust)."""
    block = bundle.manifest.validation.get("onnxruntime") or {}
    atol, rtol = block.get("atol"), block.get("rtol")
    if atol is None:
        return DEFAULT_ATOL, DEFAULT_RTOL
    return float(atol), float(rtol if rtol is not None else DEFAULT_RTOL)


def _trt_profile(samples: list[tuple[dict, dict]]) -> list[str]:
    """TensorRT needs an optimization profile covering every stored shape: min/opt/max per input."""
    shapes: dict[str, list[tuple]] = {}
    for inputs, _ in samples:
        for name, value in inputs.items():
            shapes.setdefault(name, []).append(np.shape(value))
    if all(len(set(s)) == 1 for s in shapes.values()):
        return []  # static shapes: Polygraphy takes them from the inputs
    lo = {k: [min(d) for d in zip(*v)] for k, v in shapes.items()}
    hi = {k: [max(d) for d in zip(*v)] for k, v in shapes.items()}

    def fmt(table):
        return [f"{k}:{list(v)}".replace(" ", "") for k, v in table.items()]

    return ["--trt-min-shapes", *fmt(lo), "--trt-opt-shapes", *fmt(hi), "--trt-max-shapes", *fmt(hi)]
