"""Errors that teach (issue #26): each known failure, triggered for real, ends in its hint line."""

from __future__ import annotations

import textwrap

import pytest

from edgekit.errors import EdgekitError, ExportError, missing_extra
from edgekit.hints import hint_for, user_source_line

MODELS = textwrap.dedent('''
    import torch


    class DataIf(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x - 1


    class Alias(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda t: t, lambda t: t * 2, (x,))


    class TensorInBranch(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda t: t + torch.tensor(1.0), lambda t: t * 2, (x,))


    class Recurrent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(4, 4, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

        def dynamic_shapes(self):
            return {"x": {1: "time"}}


    def build(name):
        if name == "recurrent":
            return Recurrent(), (torch.randn(1, 6, 4),)
        return {"data_if": DataIf, "alias": Alias, "tensor": TensorInBranch}[name](), (torch.randn(1, 4),)


    def data_if():
        return build("data_if")
''')


CUSTOM_OP = textwrap.dedent('''
    import torch


    @torch.library.custom_op("edgekit_hint_test::twice", mutates_args=())
    def twice(x: torch.Tensor) -> torch.Tensor:
        return x * 2


    @twice.register_fake
    def _(x):
        return torch.empty_like(x)


    class CustomOp(torch.nn.Module):
        def forward(self, x):
            return twice(x) + 1


    def build(name):
        return CustomOp(), (torch.randn(1, 4),)
''')


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import importlib
    import sys

    folder = tmp_path_factory.mktemp("hints")
    (folder / "hint_models.py").write_text(MODELS)
    (folder / "hint_custom.py").write_text(CUSTOM_OP)  # imported once: a custom op registers once per process
    # imported by name (dynamo looks the module of an eager torch.cond up in sys.modules)
    sys.path.insert(0, str(folder))
    try:
        yield folder / "hint_models.py", {"models": importlib.import_module("hint_models").build,
                                          "custom": importlib.import_module("hint_custom").build}
    finally:
        sys.path.remove(str(folder))


def _export_error(models, name, tmp_path) -> ExportError:
    from edgekit.export.onnx import onnx_from_torch
    from edgekit.sources.python import from_built

    build = models[1]["custom" if name == "custom" else "models"]
    source = from_built(f"models.py:{name}", "file", build(name), [], {}, "0" * 64)
    with pytest.raises(ExportError) as info:
        onnx_from_torch(source, tmp_path / "m.onnx", tmp_path / "log.txt")
    assert info.value.hint, str(info.value)
    return info.value


def test_data_dependent_if_suggests_torch_cond_with_the_source_line(models, tmp_path):
    error = _export_error(models, "data_if", tmp_path)
    assert "GuardOnDataDependentSymNode" in str(error)
    assert "torch.cond(pred, true_fn, false_fn" in error.hint and "README.md#dynamic-control-flow" in error.hint
    assert error.hint.endswith(f"at {models[0]}:7: if x.sum() > 0:")


def test_aliasing_branch_suggests_clone(models, tmp_path):
    error = _export_error(models, "alias", tmp_path)
    assert "return t.clone() instead of t" in error.hint
    assert f"{models[0]}:14: return torch.cond(" in error.hint


def test_torch_tensor_in_a_branch_suggests_torch_full(models, tmp_path):
    error = _export_error(models, "tensor", tmp_path)
    assert "torch.full((), value, dtype=...)" in error.hint
    assert f"{models[0]}:19:" in error.hint


def test_a_dynamic_dim_the_code_fixes_says_so(models, tmp_path):
    error = _export_error(models, "recurrent", tmp_path)
    assert "Constraints violated" in str(error)
    assert error.hint.startswith("a dim declared dynamic in dynamic_shapes() (L['x'].size()[1]) is fixed to one "
                                 "size by the model's code: nn.LSTM/nn.GRU unroll"), error.hint


def test_op_without_onnx_translation_names_the_op(models, tmp_path):
    error = _export_error(models, "custom", tmp_path)
    assert error.hint.startswith("ONNX (torch.onnx) cannot run op edgekit_hint_test.twice: write it with standard")


def _custom_op_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Twice", ["x"], ["t"], domain="edgekit.test", name="twice_0"),
             helper.make_node("Relu", ["t"], ["y"], name="relu_0")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[
        helper.make_opsetid("", 18), helper.make_opsetid("edgekit.test", 1)])
    onnx.save(model, str(path))
    return path


@pytest.mark.openvino
def test_op_openvino_cannot_convert_names_op_and_target(tmp_path):
    from edgekit.export.openvino import ir_from_onnx

    with pytest.raises(ExportError) as info:
        ir_from_onnx(_custom_op_onnx(tmp_path / "c.onnx"), tmp_path / "c.xml")
    hint = hint_for(str(info.value))
    assert hint.startswith("OpenVINO cannot run op edgekit.test.Twice: ") and "--target openvino" in hint


@pytest.mark.tensorrt
def test_op_tensorrt_cannot_parse_names_op_node_and_target(tmp_path):
    from edgekit.export.tensorrt import engine_from_onnx

    with pytest.raises(ExportError) as info:
        engine_from_onnx(_custom_op_onnx(tmp_path / "c.onnx"), tmp_path / "c.engine", "SM86")
    hint = hint_for(str(info.value))
    assert hint.startswith("TensorRT cannot run op Twice (node twice_0): ") and "plugin" in hint


def test_missing_extra_hint_and_boundary(monkeypatch):
    import io

    import typer
    from rich.console import Console

    import importlib
    app = importlib.import_module("edgekit.cli.app")  # the module: edgekit.cli.app is also the Typer app
    command = app.command

    out = io.StringIO()
    monkeypatch.setattr(app, "console", Console(file=out, width=200))

    install = "install the extra: pip install 'edgekit[{}]'"
    assert missing_extra("openvino", "openvino", "openvino").hint == install.format("openvino")
    assert hint_for("--ray needs ray (pip install 'edgekit[sweep]')") == install.format("sweep")

    def needs_polygraphy():
        raise ModuleNotFoundError("No module named 'polygraphy'", name="polygraphy")

    def unknown():
        raise ModuleNotFoundError("No module named 'nothing_we_know'", name="nothing_we_know")

    with pytest.raises(typer.Exit):
        command(needs_polygraphy)()
    err = out.getvalue()
    assert "error: polygraphy is not installed" in err
    assert "hint: install the extra: pip install 'edgekit[polygraphy]'" in err  # rich markup escaped
    with pytest.raises(ModuleNotFoundError):  # not an optional module of ours: a bug, keeps its traceback
        command(unknown)()

    def plain():
        raise EdgekitError("no hint known for this")

    with pytest.raises(typer.Exit):
        command(plain)()
    assert "error: no hint known for this" in out.getvalue() and "hint:" not in out.getvalue()[len(err):]


def test_user_source_line_skips_libraries_and_edgekit(tmp_path):
    user = tmp_path / "m.py"
    user.write_text("a = 1\nif x.sum() > 0:\n")
    text = (f'  File "{user}", line 2, in forward\n'
            '  File "/work/main/.venv/lib/python3.11/site-packages/torch/_ops.py", line 9, in f\n'
            '  File "<string>", line 1, in <lambda>\n')
    assert user_source_line(text) == f"{user}:2: if x.sum() > 0:"
    assert user_source_line('  File "/usr/lib/python3.11/abc.py", line 3, in f\n') is None


def test_cli_prints_the_hint_under_the_one_error_line(models, tmp_path):
    from conftest import run_cli

    out = tmp_path / "b"
    result = run_cli("export", f"{models[0]}:data_if", "--target", "onnx", "--out", out, "--no-validate")
    lines = result.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[errors[0] + 1].startswith("hint: a Python `if`/`while` on a tensor's value"), result.stderr
    assert not out.exists()
