"""`edgekit prune` as a user runs it: --json report on stdout, three files at --out; bad options give one
error line, exit 1, no traceback and nothing at --out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from prune_fixtures import one_thread  # noqa: F401

pytestmark = pytest.mark.prune

SPEC = "zoo:rbqe?width=8,weights=none"


def test_prune_cli_end_to_end(tmp_path):
    import torch

    out = tmp_path / "pruned"
    result = run_cli("prune", SPEC, "--density", "0.5", "--steps", "2", "--recover-minutes", "0", "--rank", "4",
                     "--out", out, "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert sorted(p.name for p in out.iterdir()) == ["adapter.safetensors", "model.pt2", "report.json"]
    assert Path(report["model"]).is_absolute() and Path(report["model"]) == (out / "model.pt2").resolve()
    assert Path(report["adapter"]) == (out / "adapter.safetensors").resolve()
    assert json.loads((out / "report.json").read_text())["adapter_sha256"] == report["adapter_sha256"]
    assert report["method"] == "splora" and report["rank"] == 4 and report["density"] == 0.5
    assert report["macs_after"] < 0.6 * report["macs_before"] and report["params_after"] < report["params_before"]
    assert 0 < report["learned_parameters"] < report["params_after"]
    assert report["recovery"]["ran"] is False
    program = torch.export.load(str(out / "model.pt2"))
    enhanced, exit_index = program.module()(torch.rand(1, 1, 64, 64), torch.tensor(2.0))
    assert enhanced.shape == (1, 1, 64, 64) and int(exit_index) == 4
    again = run_cli("prune", SPEC, "--out", out)  # refused before any work
    assert again.returncode == 1 and "--force" in again.stderr


@pytest.mark.parametrize("args,fault", [
    (["--density", "0"], "--density"), (["--density", "1.5"], "--density"),
    (["--importance", "fisher"], "--importance"), (["--rank", "0"], "--rank"), (["--rank", "-2"], "--rank"),
    (["--adapter", "lora"], "--adapter"), (["--steps", "0"], "--steps"), (["--allocate", "greedy"], "--allocate"),
])
def test_bad_options_give_one_error_line(tmp_path, args, fault):
    out = tmp_path / "pruned"
    result = run_cli("prune", SPEC, *args, "--out", out)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fault in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists()


def test_prune_refuses_a_non_module_source(tmp_path):
    onnx_like = tmp_path / "m.pt2"
    result = run_cli("prune", onnx_like, "--out", tmp_path / "pruned")
    assert result.returncode == 1 and result.stderr.startswith("error:") and "Traceback" not in result.stderr
