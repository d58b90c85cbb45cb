"""The bad-input corpus (issue #22), one subprocess per case: the exit code, one line naming the thing at
fault, no traceback, nothing left at --out (no bundle, no staging dir) and no pickle ever executed."""

from __future__ import annotations

import shutil

import pytest

from badinput_cases import CANARY, CASES
from conftest import run_cli

pytestmark = [pytest.mark.onnxruntime, pytest.mark.openvino]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, toy_bundle, tmp_path):
    name, setup, argv, code, needles = case
    toy = tmp_path / "toy"
    shutil.copytree(toy_bundle, toy)
    out = tmp_path / "out"
    names = {"tmp": tmp_path, "toy": toy, "out": out, **setup(tmp_path, toy)}
    result = run_cli(*[a.format(**names) for a in argv], cwd=tmp_path, timeout=240)
    assert result.returncode == code, f"{name}: exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if code == 1:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr[-3000:]
        print(f"\n{name}: {errors[0]}")
        for needle in needles:
            assert needle in errors[0], errors[0]
    else:
        assert all(n in result.stderr for n in needles), result.stderr[-2000:]
    assert not out.exists(), f"{name}: left a bundle at --out"
    assert not list(tmp_path.glob(".out.*")), f"{name}: left a staging dir beside --out"
    assert not (tmp_path / CANARY).exists(), f"{name}: a pickle or a file named by the bundle was executed"


def test_the_corpus_covers_every_command_and_input_kind():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)
    commands = {c[2][0] for c in CASES}
    assert {"export", "validate", "bench", "inspect", "debug", "quantize", "sweep", "verify"} <= commands
    assert {i.split("-")[0] for i in ids} >= {"src", "onnx", "flag", "data", "calib", "bundle", "sweep"}
