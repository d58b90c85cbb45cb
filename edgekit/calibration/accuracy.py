"""INT8 accuracy control (`--max-drop`): rank quantized layers by the error they add, and keep the most
sensitive ones in float until the task metric's drop fits the budget.

This does for the edgekit Q/DQ graph what NNCF's `quantize_with_accuracy_control` does for OpenVINO
models. NNCF is not used because its quantization leaves convs inside Loop bodies (OpenVINO) and If/Loop
bodies (ONNX) in fp32; one set of float layers decided here applies to every target built from the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.surface import walk_graphs


# Inputs the layer ranking runs on: with 8, RBQE's ranking missed the images whose exit path int8 flips
# (paths stayed at 92% until 99 of 127 layers were float); enough to include them costs ~1 min more.
PROBE_FEEDS = 24


@dataclass
class LayerSensitivity:
    node: str
    op: str
    graph: str
    rel_l2_float: float  # the model's output error with only this layer back in float
    gain: float  # how much of the all-int8 error that removes (all-int8 rel L2 − rel_l2_float)
    paths_fixed: int = 0  # samples whose exit path all-int8 changed and this layer in float restores
    gain_same_path: float = 0.0  # error removed on the samples whose path all-int8 kept

    @property
    def rank_key(self) -> tuple[int, float]:
        return self.paths_fixed, self.gain_same_path


def ort_run(model):
    """A `feed → outputs` function over an ONNX model (proto or path) on ONNX Runtime CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    data = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    inputs = {i.name for i in session.get_inputs()}
    return lambda feed: dict(zip(names, session.run(names, {k: v for k, v in feed.items() if k in inputs})))


def sample_errors(run, samples: list[tuple[dict, dict]]) -> list[tuple[float, float, bool]]:
    """Per sample: (squared error, squared reference) summed over its float outputs, and whether its exit
    path (integer outputs) changed; a changed path makes the whole output count as wrong."""
    errors = []
    for inputs, reference in samples:
        got = run(inputs)
        flipped = any(np.asarray(reference[k]).dtype.kind in "iu" and not np.array_equal(reference[k], got[k])
                      for k in reference)
        num = den = 0.0
        for k, ref in reference.items():
            if np.asarray(ref).dtype.kind == "f":
                ref64 = np.asarray(ref, np.float64)
                diff = ref64 if flipped else ref64 - got[k]
                num += float((diff**2).sum())
                den += float((ref64**2).sum())
        errors.append((num, den, flipped))
    return errors


def rel_l2(errors: list[tuple[float, float, bool]], keep: list[bool] | None = None) -> float:
    """Relative L2 of `sample_errors` over all samples, or those in `keep`."""
    chosen = [e for e, k in zip(errors, keep or [True] * len(errors)) if k]
    return (sum(e[0] for e in chosen) / max(sum(e[1] for e in chosen), 1e-30)) ** 0.5


def layer_sensitivity(model, fp32, samples: list[tuple[dict, dict]]) -> tuple[float, list[LayerSensitivity]]:
    """For each quantized layer of the Q/DQ `model`: the output error vs `samples`' fp32 references when
    only that layer is back in float (from `fp32`, the graph it was made from). Returns (all-int8 error,
    layers ranked by `rank_key`: exit paths restored first, then error removed on the other samples).

    The two-part rank: a single layer rarely restores a flipped exit path, and a flipped sample's error
    (its whole output) swamps the rest, so ranking by the total error alone left every gain at 0 on
    zoo:rbqe and the order arbitrary.
    """
    import onnx

    from edgekit.calibration.qdq import QUANTIZABLE, quantizable_nodes

    producers = {o: n for _, g in walk_graphs(model.graph) for n in g.node for o in n.output}
    base = sample_errors(ort_run(model), samples)
    kept = [not flipped for *_, flipped in base]
    ranked = []
    for ref, node in quantizable_nodes(model):
        acts, weight, _ = QUANTIZABLE[node.op_type]
        if any(producers.get(node.input[i]) is None or producers[node.input[i]].op_type != "DequantizeLinear"
               for i in (*acts, weight)):
            continue
        variant = onnx.ModelProto()
        variant.CopyFrom(model)
        float_again(variant, fp32, node.name)
        errors = sample_errors(ort_run(variant), samples)
        ranked.append(LayerSensitivity(
            node.name, node.op_type, str(ref), rel_l2(errors), rel_l2(base) - rel_l2(errors),
            paths_fixed=sum(not k for k in kept) - sum(e[2] for e in errors),
            gain_same_path=rel_l2(base, kept) - rel_l2(errors, kept)))
    ranked.sort(key=lambda s: s.rank_key, reverse=True)
    return rel_l2(base), ranked


def float_again(model, fp32, node_name: str) -> None:
    """Put `node_name` back in float: its activations bypass QuantizeLinear→DequantizeLinear and its weight
    is the original fp32 initializer (from the fp32 graph, where node names are the same)."""
    nodes = {o: n for _, g in walk_graphs(model.graph) for n in g.node for o in n.output}
    target = next(n for _, g in walk_graphs(model.graph) for n in g.node if n.name == node_name)
    original = next(n for _, g in walk_graphs(fp32.graph) for n in g.node if n.name == node_name)
    fp32_inits = {t.name: t for _, g in walk_graphs(fp32.graph) for t in g.initializer}
    for i, name in enumerate(target.input):
        dq = nodes.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = nodes.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            target.input[i] = q.input[0]  # the activation as it was before quantization
        elif original.input[i] in fp32_inits:
            weight = fp32_inits[original.input[i]]
            model.graph.initializer.append(weight)
            target.input[i] = weight.name


def path_agreement(run, reference, feeds: list[dict]) -> float:
    """Share of `feeds` on which `run` gives the same integer outputs (exit index, step count) as `reference`."""
    def paths(outputs):
        return {k: int(v) for k, v in outputs.items() if np.ndim(v) == 0 and np.asarray(v).dtype.kind in "iu"}

    same = [paths(run(feed)) == paths(reference(feed)) for feed in feeds]
    return float(np.mean(same)) if same else 1.0


def int8_within_budget(fp32_path: Path, out_path: Path, feeds: list[dict], metric, max_drop: float,
                       log=lambda message: None, min_path_agreement: float = 0.95):
    """Quantize `fp32_path` to `out_path`, then keep the most sensitive layers in float until `metric`
    (edgekit.validation.metrics) drops at most `max_drop` from the fp32 graph on ONNX Runtime.

    The budget also asks that the exit path (integer outputs) match fp32 on `min_path_agreement` of the
    metric's inputs: RBQE's IQAM normalises 8×8 patches, so int8 noise in flat regions moves its score
    across the threshold even with IQAM itself in float.

    Layers are ranked once by `layer_sensitivity` on up to PROBE_FEEDS of the metric's inputs; the number kept in
    float grows 1, 2, 4, … until the budget fits and is then bisected down. Returns (Int8Result, accuracy
    report). Raises EdgekitError when even every ranked layer in float does not fit.
    """
    import onnx

    from edgekit.calibration.quantize import int8_from_onnx
    from edgekit.validation.metrics import memo_run

    reference = memo_run(ort_run(fp32_path))
    baseline = metric.evaluate(reference, reference).baseline

    def attempt(excluded: dict[str, str]):
        result = int8_from_onnx(fp32_path, out_path, feeds, exclude=excluded)
        run = memo_run(ort_run(out_path))
        measured = metric.evaluate(run, reference, baseline)
        return result, measured, path_agreement(run, reference, metric.feeds)

    def fits(measured, agreement) -> bool:
        return measured.within(max_drop) and agreement >= min_path_agreement

    result, measured, agreement = attempt({})
    report = {"metric": measured.name, "max_drop": max_drop, "baseline": measured.baseline,
              "min_path_agreement": min_path_agreement, "drop_all_int8": measured.drop,
              "path_agreement_all_int8": agreement, "kept_float": []}
    log(f"all-int8 {measured.name} drop {measured.drop:.4g} (budget {max_drop:g}), paths {agreement:.0%}")
    if fits(measured, agreement):
        report.update(drop=measured.drop, path_agreement=agreement)
        return result, report
    probe = metric.feeds[:PROBE_FEEDS]
    samples = [(feed, reference(feed)) for feed in probe]
    _, ranked = layer_sensitivity(onnx.load(str(out_path)), onnx.load(str(fp32_path)), samples)
    reason = f"accuracy control: among the most sensitive layers for {measured.name} (budget {max_drop:g})"
    drops: dict[int, float] = {}

    def fits_with(k: int) -> bool:
        _, m, paths = attempt({r.node: reason for r in ranked[:k]})
        drops[k] = m.drop
        log(f"{k} layer(s) in float: drop {m.drop:.4g}, paths {paths:.0%}")
        return fits(m, paths)

    k = 1
    while not fits_with(k):
        if k >= len(ranked):
            raise EdgekitError(f"--max-drop {max_drop:g}: {measured.name} still drops {drops[k]:.4g} (or exit "
                               f"paths differ) with every quantized layer in float; raise the budget or check "
                               f"the calibration data")
        k = min(2 * k, len(ranked))
    low, high = k // 2, k  # `high` fits; `low` did not (0: the all-int8 attempt)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if fits_with(mid) else (mid, high)
    result, measured, agreement = attempt({r.node: reason for r in ranked[:high]})  # out_path: the last attempt
    report.update(drop=measured.drop, path_agreement=agreement,
                  kept_float=[{"node": r.node, "op": r.op, "graph": r.graph, "gain_rel_l2": r.gain}
                              for r in ranked[:high]])
    return result, report
