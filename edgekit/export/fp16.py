"""fp32 ONNX → fp16 ONNX with fp32 inputs/outputs, for engines whose precision lives in the graph
(TensorRT 11 / TensorRT-RTX have no fp16 builder flag). Numerically sensitive ops stay fp32, and If
branches and Loop bodies are converted too."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ExportError
from edgekit.export.controlflow import iter_nodes, load_onnx

# Ops kept in fp32 in fp16 graphs: long reductions and normalisations lose precision or overflow past
# 65504, exponentials and powers overflow, comparisons decide control flow (a user's threshold is
# compared at full precision), and Q/DQ scales stay as the quantizer wrote them.
FP32_OPS = frozenset({
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceProd", "CumSum", "LayerNormalization", "GroupNormalization", "InstanceNormalization",
    "BatchNormalization", "LpNormalization", "MeanVarianceNormalization", "RMSNormalization",
    "Exp", "Log", "Pow", "Softmax", "LogSoftmax",
    "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal",
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
})


# --- fp16 graphs --------------------------------------------------------------------------------------

def onnx_fp16_from_onnx(src: Path, dst: Path, keep_fp32: frozenset[str] = FP32_OPS) -> Path:
    """Write an fp16 copy of `src` at `dst`: fp32 inputs and outputs, `keep_fp32` ops (and inputs the ONNX
    schema requires in fp32, e.g. Resize scales) computed in fp32, If/Loop bodies converted too.

    Written here rather than taken from onnxconverter-common 1.16 / onnxruntime.transformers.float16:
    both produce invalid graphs when a kept-fp32 op sits inside an If/Loop body (casts missing, or added
    to the main graph) and the former leaves Cast(to=float) outputs typed fp16.
    Raises ExportError if the converted graph fails ONNX type checking.
    """
    import onnx

    src, dst = Path(src), Path(dst)
    model = onnx.shape_inference.infer_shapes(load_onnx(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
    _Fp16Graphs(model, keep_fp32, opset).run()
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:400]
        raise ExportError(f"fp16: converting {src.name} gave an invalid graph: {reason}") from exc
    external = src.with_name(src.name + ".data").exists() or model.ByteSize() > 1_800_000_000
    for stale in (dst, dst.with_name(dst.name + ".data")):
        stale.unlink(missing_ok=True)
    onnx.save_model(model, str(dst), save_as_external_data=external, location=dst.name + ".data")
    return dst


class _Fp16Graphs:
    """One pass over the graph and its subgraphs in topological order. Every float value becomes fp16
    except graph inputs (cast once, lazily) and the outputs of kept-fp32 nodes (computed in fp32, then
    cast); kept-fp32 consumers reuse an fp32 version of a value where one is in scope."""

    def __init__(self, model, keep_fp32, opset):
        import onnx

        self.onnx, self.model, self.keep, self.opset = onnx, model, keep_fp32, opset
        self.FLOAT, self.HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
        self.float_values = {v.name for g in self._graphs(model.graph)
                             for v in (*g.input, *g.output, *g.value_info)
                             if v.type.tensor_type.elem_type == self.FLOAT}
        self.float_values |= {t.name for g in self._graphs(model.graph) for t in g.initializer
                              if t.data_type == self.FLOAT}
        self.names = {n for g in self._graphs(model.graph) for n in self._all_names(g)}
        self.prelude: list = []  # input → fp16 casts at the top of the main graph
        self.fp16_alias: dict[str, str] = {}
        # an initializer read only where fp32 is needed stays fp32; any other float initializer turns fp16
        uses: dict[str, list[bool]] = {t.name: [] for g in self._graphs(model.graph) for t in g.initializer}
        for node in iter_nodes(model.graph):
            for i, name in enumerate(node.input):
                if name in uses:
                    uses[name].append(self._needs_fp32(node, i))
        self.fp32_initializers = {n for n, needs in uses.items() if needs and all(needs)}

    def run(self) -> None:
        graph = self.model.graph
        scope = {v.name: v.name for v in graph.input if v.name in self.float_values}
        self._graph(graph, [scope], top=True)
        nodes = [*self.prelude, *graph.node]
        del graph.node[:]
        graph.node.extend(nodes)
        # graph outputs keep their names and fp32 type: the fp16 value inside is renamed, then cast back
        inputs = {v.name for v in graph.input} | {t.name for t in graph.initializer}
        for out in graph.output:
            if out.name in self.float_values and out.name not in inputs:
                inner = self._fresh(out.name + "__fp16")
                self._rename(graph, out.name, inner)
                fp32 = scope.get(out.name)  # an fp32 version exists (a kept-fp32 node made it): use it
                graph.node.append(self.onnx.helper.make_node("Identity", [fp32], [out.name]) if fp32 else
                                  self.onnx.helper.make_node("Cast", [inner], [out.name], to=self.FLOAT))

    def _graph(self, graph, scopes: list[dict], top: bool) -> None:
        scope = scopes[-1]
        for t in graph.initializer:
            if t.data_type == self.FLOAT:
                if t.name in self.fp32_initializers:
                    scope[t.name] = t.name
                else:
                    t.CopyFrom(self._tensor_fp16(t))
        if not top:
            for v in (*graph.input, *graph.output):
                if v.type.tensor_type.elem_type == self.FLOAT:
                    v.type.tensor_type.elem_type = self.HALF
            for v in graph.output:
                v.name = self._alias(v.name, scopes) or v.name
        del graph.value_info[:]  # stale types; inferred again after conversion
        nodes = []
        for node in graph.node:
            blocked = self._blocked(node)
            for i, name in enumerate(node.input):
                if name not in self.float_values:
                    continue
                if blocked or self._needs_fp32(node, i):
                    node.input[i] = self._fp32_version(name, scopes, nodes)
                else:
                    node.input[i] = self._alias(name, scopes) or name
            if blocked:
                nodes.append(node)
                for i, name in enumerate(node.output):
                    if name in self.float_values:
                        node.output[i] = scope[name] = self._fresh(name + "__fp32")
                        nodes.append(self.onnx.helper.make_node("Cast", [node.output[i]], [name], to=self.HALF))
                continue
            self._node_fp16(node)
            for attr in node.attribute:
                for sub in ([attr.g] if attr.type == attr.GRAPH else list(attr.graphs)):
                    self._graph(sub, [*scopes, {}], top=False)
            nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)

    def _alias(self, name, scopes):
        """The fp16 name for a main-graph fp32 input (its cast is created on first use)."""
        if name not in scopes[0] or scopes[0][name] != name or name in self.fp32_initializers:
            return None
        if name not in self.fp16_alias:
            self.fp16_alias[name] = self._fresh(name + "__fp16")
            self.prelude.append(self.onnx.helper.make_node("Cast", [name], [self.fp16_alias[name]], to=self.HALF))
        return self.fp16_alias[name]

    def _fp32_version(self, name, scopes, nodes) -> str:
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        scopes[-1][name] = self._fresh(name + "__fp32")
        nodes.append(self.onnx.helper.make_node("Cast", [name], [scopes[-1][name]], to=self.FLOAT))
        return scopes[-1][name]

    def _blocked(self, node) -> bool:
        if node.op_type in self.keep:
            return True
        schema = self._schema(node)
        if schema is None:  # an op ONNX does not know (a plugin, a custom domain): leave it in fp32
            return node.domain not in ("", "ai.onnx")
        constraints = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
        formals = [*schema.inputs, *schema.outputs]
        return any("tensor(float)" in constraints.get(f.type_str, ()) and
                   "tensor(float16)" not in constraints[f.type_str] for f in formals)

    def _needs_fp32(self, node, index: int) -> bool:
        """An input the schema fixes to tensor(float) (Resize scales), or any input of a blocked node."""
        if self._blocked(node):
            return True
        schema = self._schema(node)
        if schema is None or not schema.inputs:
            return False
        return schema.inputs[min(index, len(schema.inputs) - 1)].type_str == "tensor(float)"

    def _schema(self, node):
        try:
            return self.onnx.defs.get_schema(node.op_type, self.opset, node.domain)
        except Exception:  # SchemaError: unknown op or domain
            return None

    def _node_fp16(self, node) -> None:
        helper = self.onnx.helper
        for attr in node.attribute:
            if attr.name in ("to", "dtype") and attr.type == attr.INT and attr.i == self.FLOAT:
                attr.i = self.HALF
            elif attr.type == attr.TENSOR and attr.t.data_type == self.FLOAT:
                attr.t.CopyFrom(self._tensor_fp16(attr.t))
            elif attr.type == attr.TENSORS:
                for t in attr.tensors:
                    if t.data_type == self.FLOAT:
                        t.CopyFrom(self._tensor_fp16(t))
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name in ("value_float", "value_floats"):
            attr = node.attribute[0]
            values = [attr.f] if attr.name == "value_float" else list(attr.floats)
            shape = [] if attr.name == "value_float" else [len(values)]
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("value", self._tensor_fp16(
                helper.make_tensor("value", self.FLOAT, shape, values))))
        names = {a.name for a in node.attribute}
        if node.op_type == "ConstantOfShape" and "value" not in names:  # default: a float32 zero
            node.attribute.append(helper.make_attribute("value", helper.make_tensor("value", self.HALF, [1], [0])))
        if node.op_type in ("RandomNormal", "RandomUniform") and "dtype" not in names:  # default: float32
            node.attribute.append(helper.make_attribute("dtype", self.HALF))

    def _tensor_fp16(self, tensor):
        import numpy as np

        from onnx import numpy_helper

        values = numpy_helper.to_array(tensor).astype(np.float32)
        finite = np.isfinite(values)
        values = np.where(finite, np.clip(values, -65504, 65504), values)
        # keep tiny non-zero values (epsilons) non-zero: fp16's smallest subnormal is 2**-24
        tiny = finite & (values != 0) & (np.abs(values) < 2.0 ** -24)
        values = np.where(tiny, np.sign(values) * 2.0 ** -24, values)
        return numpy_helper.from_array(values.astype(np.float16), tensor.name)

    def _fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}{i}", i + 1
        self.names.add(name)
        return name

    def _rename(self, graph, old: str, new: str) -> None:
        for node in graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
            for attr in node.attribute:
                for sub in ([attr.g] if attr.type == attr.GRAPH else list(attr.graphs)):
                    for out in sub.output:
                        out.name = new if out.name == old else out.name
                    self._rename(sub, old, new)

    def _graphs(self, graph):
        yield graph
        for node in graph.node:
            for attr in node.attribute:
                for sub in ([attr.g] if attr.type == attr.GRAPH else list(attr.graphs)):
                    yield from self._graphs(sub)

    @staticmethod
    def _all_names(graph):
        yield from (v.name for v in (*graph.input, *graph.output, *graph.value_info))
        yield from (t.name for t in graph.initializer)
        for node in graph.node:
            yield from node.input
            yield from node.output
