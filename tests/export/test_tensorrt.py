"""ONNX → TensorRT engines on a machine without a GPU (TensorRT-RTX builds for named archs), the fp16 graph
conversion, parse errors, arch parsing, and the runner: refusal without a GPU, parity with one."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BackendUnavailable, EdgekitError, ExportError
from edgekit.export import trt_compat

try:
    TRT = trt_compat.import_tensorrt()
except BackendUnavailable as exc:
    pytest.skip(f"neither tensorrt nor tensorrt_rtx imports: {exc}", allow_module_level=True)

import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.bundle import Bundle, Manifest, sha256_file  # noqa: E402
from edgekit.export.targets import BuildContext  # noqa: E402
from edgekit.export.fp16 import onnx_fp16_from_onnx  # noqa: E402
from edgekit.export.tensorrt import engine_from_onnx, engines_from_onnx, layers_from_onnx  # noqa: E402
from edgekit.specs import TensorSpec  # noqa: E402
from edgekit.validation.compare import DEFAULT_TOLERANCES, compare_output  # noqa: E402

pytestmark = pytest.mark.tensorrt

LOOP_LAYERS = {"TRIP_LIMIT", "RECURRENCE", "LOOP_OUTPUT"}
GPU = trt_compat.cuda_device_available()
NAMED_ARCHS = trt_compat.names_archs(TRT)
BUILD_ARCH = trt_compat.current_compute_capability() if GPU else ("SM86" if NAMED_ARCHS else None)
needs_build = pytest.mark.skipif(BUILD_ARCH is None, reason="full TensorRT builds only on a GPU and none is visible")
needs_named_archs = pytest.mark.skipif(not NAMED_ARCHS, reason=f"{trt_compat.builder_name(TRT)} builds only for "
                                                                "the GPU it runs on (no compute-capability API)")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """zoo:toy (width 4, 4 steps) exported with dynamic height/width: one If, one Loop."""
    import torch

    from edgekit.zoo import load_zoo

    model = load_zoo().get("toy").build(width=4, max_steps=4)
    path = tmp_path_factory.mktemp("toy") / "model.onnx"
    torch.onnx.export(model, model.example_inputs(), str(path), dynamo=True, input_names=list(model.input_names),
                      output_names=list(model.output_names),
                      dynamic_shapes={"image": {2: torch.export.Dim("height", min=8, max=512),
                                                3: torch.export.Dim("width", min=8, max=512)},
                                      "threshold": None, "num_steps": None})
    feeds = [{k: v.numpy() for k, v in feed.items()} for feed in model.validation_feeds()]
    return path, feeds


@needs_named_archs
def test_engines_per_arch_on_cpu(toy, tmp_path):
    onnx_path, _ = toy
    ctx = BuildContext(tmp_path, onnx_path, "fp32", {"trt_arch": "sm86,SM89"})
    entries = engines_from_onnx(ctx)
    assert [e["compute_capability"] for e in entries] == ["SM86", "SM89"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.sm86.engine", "model.sm89.engine"]
    for entry in entries:
        engine = tmp_path / entry["path"]
        assert entry["size_bytes"] == engine.stat().st_size > 0
        assert entry["sha256"] == sha256_file(engine)
        assert entry["builder"] == trt_compat.builder_name(TRT) and entry["precision"] == "fp32"
        layers = entry["layers"]
        assert layers["CONDITION"] == 1 and LOOP_LAYERS <= set(layers)
        assert layers["CONVOLUTION"] == 5  # stem + both If branches + the Loop body: subgraph layers count
        assert entry["profile"]["image"] == {"min": [1, 3, 1, 1], "opt": [1, 3, 64, 64], "max": [1, 3, 256, 256]}
    assert entries[0]["sha256"] != entries[1]["sha256"]


@needs_named_archs
def test_fp16_engine_and_shape_hints(toy, tmp_path):
    onnx_path, _ = toy
    hints = {"image": ((1, 3, 8, 8), (1, 3, 32, 32), (1, 3, 96, 96))}
    entry = engine_from_onnx(onnx_path, tmp_path / "model.sm86.engine", "sm86", "fp16", shape_hints=hints)
    assert entry["precision"] == "fp16" and entry["compute_capability"] == "SM86"
    assert entry["layers"]["CAST"] >= 2  # fp32 I/O around an fp16 graph
    assert entry["layers"]["CONDITION"] == 1 and LOOP_LAYERS <= set(entry["layers"])
    assert entry["profile"]["image"]["max"] == [1, 3, 96, 96]
    with pytest.raises(EdgekitError, match="does not fit"):
        engine_from_onnx(onnx_path, tmp_path / "x.engine", "sm86", shape_hints={"image": ((3, 8, 8),) * 3})
    assert layers_from_onnx(onnx_path) == {k: v for k, v in entry["layers"].items() if k != "CAST"}


def test_fp16_onnx_runs_in_onnxruntime_close_to_fp32(toy, tmp_path):
    import onnxruntime as ort

    onnx_path, feeds = toy
    fp16 = onnx_fp16_from_onnx(onnx_path, tmp_path / "model.fp16.onnx")
    model = onnx.load(str(fp16))
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [TensorProto.FLOAT, TensorProto.FLOAT,
                                                                         TensorProto.INT64]
    assert any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)
    reduce_mean = next(n for n in model.graph.node if n.op_type == "ReduceMean")
    producer = next(n for n in model.graph.node if reduce_mean.input[0] in n.output)
    assert producer.op_type == "Cast" and producer.attribute[0].i == TensorProto.FLOAT  # kept in fp32
    _assert_close(onnx_path, fp16, feeds, ort)


def test_fp16_keeps_fp32_ops_inside_if_and_loop_bodies(tmp_path):
    """The case onnxconverter-common 1.16 and onnxruntime's float16 get wrong: kept-fp32 ops (Softmax,
    ReduceMean, Exp) inside If branches and a Loop body, reading outer-scope values, plus Cast(to=float)."""
    import onnxruntime as ort

    src = _if_loop_model(tmp_path / "cf.onnx")
    fp16 = onnx_fp16_from_onnx(src, tmp_path / "cf.fp16.onnx")
    onnx.checker.check_model(str(fp16), full_check=True)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((2, 8)).astype(np.float32), "c": np.array(c), "n": np.array(n, np.int64)}
             for c, n in ((True, 1), (False, 3), (True, 0))]
    _assert_close(src, fp16, feeds, ort)
    if NAMED_ARCHS:
        layers = engine_from_onnx(src, tmp_path / "cf.engine", "SM89", "fp16")["layers"]
        assert layers["CONDITION"] == 1 and LOOP_LAYERS <= set(layers) and layers["SOFTMAX"] == 1


@needs_build
@pytest.mark.parametrize("broken, node, op", [("unknown_op", "my_bad_node", "FrobnicateOp"),
                                              ("conv_in_branch", "branch_conv", "Conv")])
def test_parse_error_names_node_and_op_and_writes_nothing(tmp_path, broken, node, op):
    src = _broken_model(tmp_path / "broken.onnx", broken)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(ExportError) as info:
        engine_from_onnx(src, tmp_path / "model.engine", BUILD_ARCH)
    assert node in str(info.value) and op in str(info.value) and "cannot parse" in str(info.value)
    assert sorted(tmp_path.iterdir()) == before


@needs_build
def test_int8_needs_qdq(toy, tmp_path):
    with pytest.raises(ExportError, match="QuantizeLinear"):
        engine_from_onnx(toy[0], tmp_path / "model.engine", BUILD_ARCH, "int8")


@needs_named_archs
def test_arch_lists():
    assert trt_compat.parse_arch_list("sm86, 89,SM_89", TRT) == ["SM86", "SM89"]
    with pytest.raises(EdgekitError) as info:
        trt_compat.parse_arch_list("sm86,sm99", TRT)
    assert "SM99" in str(info.value) and all(name in str(info.value) for name in ("SM75", "SM86", "SM120"))
    if not GPU:
        assert trt_compat.parse_arch_list(None, TRT) == ["SM86", "SM89"]
        with pytest.raises(EdgekitError, match="no CUDA device"):
            trt_compat.parse_arch_list("current", TRT)


@pytest.mark.skipif(GPU, reason="a CUDA device is visible")
def test_runner_refuses_without_gpu(tmp_path):
    from edgekit.runtimes import open_runner
    from edgekit.runtimes.tensorrt import TensorRTRunner

    specs = [TensorSpec("x", (1,), "float32")]
    with pytest.raises(BackendUnavailable) as info:
        TensorRTRunner(tmp_path / "missing.engine", specs, specs)  # refused before the file is read
    assert info.value.reason == "no CUDA device"
    engines = [{"path": "model.sm86.engine", "compute_capability": "SM86"}]
    bundle = Bundle(tmp_path, Manifest(source={}, inputs=specs, outputs=specs, artifacts={"tensorrt": engines}))
    with pytest.raises(BackendUnavailable, match="tensorrt: no CUDA device"):
        open_runner(bundle, "tensorrt")


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="no CUDA device")
def test_engine_matches_onnxruntime_on_gpu(toy, tmp_path):
    import onnxruntime as ort

    from edgekit.runtimes.tensorrt import TensorRTRunner

    onnx_path, feeds = toy
    arch = trt_compat.current_compute_capability()
    if NAMED_ARCHS and arch not in trt_compat.valid_archs(TRT):
        pytest.skip(f"{trt_compat.builder_name(TRT)} cannot build for this GPU ({arch})")
    entry = engine_from_onnx(onnx_path, tmp_path / "model.engine", arch)
    inputs = [TensorSpec("image", (1, 3, "height", "width"), "float32"), TensorSpec("threshold", (), "float32"),
              TensorSpec("num_steps", (), "int64")]
    outputs = [TensorSpec("output", (1, 3, "height", "width"), "float32"), TensorSpec("exit_index", (), "int64")]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    paths = set()
    with TensorRTRunner(tmp_path / entry["path"], inputs, outputs, compute_capability=arch) as runner:
        for i, feed in enumerate(feeds):
            got = runner.run(feed)
            ref = dict(zip(["output", "exit_index"], session.run(None, feed)))
            for name in ref:
                assert compare_output(name, ref[name], got[name], DEFAULT_TOLERANCES["fp32"], i), name
            paths.add(int(got["exit_index"]))
    assert paths == {0, 1}


# --- helpers ---------------------------------------------------------------------------------------------

def _assert_close(fp32_path, fp16_path, feeds, ort):
    ref_session, session = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                            for p in (fp32_path, fp16_path))
    for i, feed in enumerate(feeds):
        refs, gots = ref_session.run(None, feed), session.run(None, feed)
        for out, ref, got in zip(session.get_outputs(), refs, gots):
            assert got.dtype == ref.dtype, out.name
            result = compare_output(out.name, ref, got, DEFAULT_TOLERANCES["fp16"], i)
            assert result, result.failures


def _if_loop_model(path):
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    value = helper.make_tensor_value_info
    const = numpy_helper.from_array
    then = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["s"], axis=-1), helper.make_node("Mul", ["s", "two"], ["s2"]),
         helper.make_node("Cast", ["n"], ["nf"], to=f), helper.make_node("Add", ["s2", "nf"], ["t"])],
        "then", [], [value("t", f, [2, 8])], [const(np.array(2.0, np.float32), "two")])
    other = helper.make_graph(
        [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1), helper.make_node("Sub", ["x", "m"], ["e"])],
        "else", [], [value("e", f, [2, 8])], [const(np.array([1], np.int64), "axes")])
    body = helper.make_graph(
        [helper.make_node("Neg", ["v"], ["nv"]), helper.make_node("Exp", ["nv"], ["ex"]),
         helper.make_node("Mul", ["ex", "step"], ["d"]), helper.make_node("Add", ["v", "d"], ["v_next"]),
         helper.make_node("Identity", ["cond"], ["cond_out"])],
        "body", [value("i", i64, []), value("cond", TensorProto.BOOL, []), value("v", f, [2, 8])],
        [value("cond_out", TensorProto.BOOL, []), value("v_next", f, [2, 8])],
        [const(np.array(0.1, np.float32), "step")])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
         helper.make_node("Loop", ["n", "go", "y"], ["z"], body=body)],  # TensorRT needs a cond input
        "cf", [value("x", f, [2, 8]), value("c", TensorProto.BOOL, []), value("n", i64, [])], [value("z", f, [2, 8])],
        [const(np.array(True), "go")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def _broken_model(path, broken: str):
    f = TensorProto.FLOAT
    x, y = helper.make_tensor_value_info("x", f, [1, 3, 8, 8]), helper.make_tensor_value_info("y", f, None)
    opsets = [helper.make_opsetid("", 18)]
    if broken == "unknown_op":
        nodes = [helper.make_node("Relu", ["x"], ["r"], name="ok_relu"),
                 helper.make_node("FrobnicateOp", ["r"], ["y"], name="my_bad_node", domain="edgekit.test")]
        graph = helper.make_graph(nodes, "g", [x], [y])
        opsets.append(helper.make_opsetid("edgekit.test", 1))
    else:  # a Conv whose weight has 5 input channels for a 3-channel input, inside an If branch
        weight = numpy_helper.from_array(np.zeros((4, 5, 3, 3), np.float32), "w")
        then = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["t"], name="branch_conv", pads=[1] * 4)],
                                 "then", [], [helper.make_tensor_value_info("t", f, None)])
        other = helper.make_graph([helper.make_node("Relu", ["x"], ["e"], name="relu")], "else", [],
                                  [helper.make_tensor_value_info("e", f, None)])
        cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
        graph = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                                  "g", [x, cond], [y], [weight])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path
