"""The README's quickstart runs as written, so the docs cannot rot."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import ROOT, run_cli

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime, pytest.mark.tensorrt]


def _block(name: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- readme-test: {name} -->\s*```console\n(.*?)```", text, re.S)
    assert match, f"README block {name!r} not found"
    return [line[2:] for line in match.group(1).splitlines() if line.startswith("$ ")]


def test_readme_quickstart_runs(tmp_path):
    commands = _block("quickstart")
    assert len(commands) >= 4
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "edgekit"
        result = run_cli(*argv[1:], cwd=tmp_path)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert (tmp_path / "bundles" / "toy" / "model.sm86.engine").exists()
