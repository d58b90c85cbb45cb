"""The export pipeline's int8 stage (`--precision int8|mixed`): calibration feeds, edgekit's Q/DQ graph as
model.onnx (every target's source; If/Loop bodies included), and, with `--quantizer nncf`, the openvino
target's IR quantized by NNCF from the fp32 graph with the same feeds and float layers
(`calibration.nncf_openvino`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.export.controlflow import load_onnx
from edgekit.validation.compare import make_samples

QUANTIZERS = ("edgekit", "nncf")  # --quantizer: who quantizes the openvino IR (model.onnx is always edgekit's)


@dataclass
class Int8Stage:
    record: dict  # pipeline.quantize
    feeds: list[dict] = field(repr=False)
    excluded: dict[str, str]  # node → why it stayed float (edgekit's rules, accuracy control included)
    fp32: Path  # the fp32 graph (model.fp32.onnx, unique node names)

    def nncf_openvino(self, ctx) -> dict:
        """The openvino target's entry, its IR quantized by NNCF (recorded in pipeline.quantize.openvino)."""
        from edgekit.calibration.nncf_openvino import nncf_ir
        from edgekit.calibration.qdq import decision_nodes

        # NNCF also quantizes the inputs of element-wise ops (Multiply, Add, ReduceSum, ...): every op that
        # only decides a branch stays float, not only the convs/MatMuls edgekit's Q/DQ would have quantized
        cone = decision_nodes(load_onnx(self.fp32, load_external_data=False), every_op=True)
        ignored = {**{n: "only decides a branch" for n in cone}, **self.excluded}
        entry = nncf_ir(self.fp32, ctx.root / "model.xml", self.feeds, ignored, ctx.precision)
        left = [u for u in entry["quantized"]["unquantized"] if ".body:" in u]
        if left:
            ctx.log(f"[yellow]![/] openvino: NNCF does not quantize Loop bodies: {len(left)} compute op(s) "
                    f"there stay float (--quantizer edgekit quantizes them)")
        self.record["openvino"] = {"method": "nncf", "nncf_version": entry["nncf_version"],
                                   "ignored_scope": sorted(ignored), "loop_body_ops_float": len(left)}
        return entry


def stage_int8(source, root: Path, artifacts: dict, options, reporter) -> Int8Stage:
    """Calibrate on the real control-flow execution and replace model.onnx by its INT8 Q/DQ graph."""
    from edgekit.calibration.datasets import load_calibration
    from edgekit.calibration.quantize import int8_from_onnx

    with reporter.stage(f"int8: calibration data ({options.calib or 'from the model'})"):
        feeds = load_calibration(options.calib, source.inputs, source.example_feed(), options.calib_samples,
                                 model=source.module)
    fp32 = root / "model.fp32.onnx"
    (root / "model.onnx").rename(fp32)
    _unique_node_names(fp32)
    accuracy = None
    if options.max_drop is None:
        with reporter.stage(f"int8: calibrate on {len(feeds)} samples and insert Q/DQ (If/Loop bodies included)"):
            result = int8_from_onnx(fp32, root / "model.onnx", feeds)
    else:
        from edgekit.calibration.accuracy import int8_within_budget
        from edgekit.validation.metrics import resolve_metric

        metric = resolve_metric(options.metric, source.module, _metric_probe_feeds(source))
        with reporter.stage(f"int8: calibrate, then keep layers in float until {metric.name} drops "
                            f"≤ {options.max_drop:g}"):
            result, accuracy = int8_within_budget(fp32, root / "model.onnx", feeds, metric, options.max_drop,
                                                  log=reporter.note)
    artifacts["onnx"] = {**artifacts["onnx"], "precision": "int8", "quantized": result.counts.to_json()}
    artifacts["onnx_fp32"] = {"path": fp32.name, "precision": "fp32"}
    record = {"method": "edgekit-qdq", "precision": options.precision, "samples": result.samples,
              "calibration": options.calib or "model:calibration_feeds",
              "scheme": ("symmetric int8; activations per-tensor (MSE-optimal clip; absmax inside Loop bodies), "
                         "weights per-channel"),
              "excluded": result.excluded, "accuracy_control": accuracy}
    return Int8Stage(record, list(feeds), dict(result.excluded), fp32)


def _unique_node_names(path: Path) -> None:
    """The torch exporter repeats node names across If/Loop bodies; int8 exclusions, sensitivity tables
    and debug reports name nodes, so the kept fp32 graph gets unique names (the int8 graph follows)."""
    import onnx

    from edgekit.calibration.qdq import unique_node_names

    model = load_onnx(path, load_external_data=False)
    if unique_node_names(model):
        onnx.save_model(model, str(path))  # external data, if any, stays where it is


def _metric_probe_feeds(source) -> list[dict]:
    """Inputs for an output-similarity metric: the example, the branch-driving feeds and random ones."""
    return make_samples(source.inputs, source.example_feed(), list(source.validation_feeds), 8, seed=7)
