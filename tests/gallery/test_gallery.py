"""The architecture gallery (issue #25) in `make test`: every model of models.py through prune --density 0.5,
export to ONNX / OpenVINO / TensorRT (engine built), int8 within the cosine budget and validate, through the
CLI. Each step must pass, or fail exactly as gallery_expected.py lists it; the README's support table must be
this run's (regenerate with `.venv/bin/python tests/gallery/gallery.py --readme`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gallery import README, STEPS, gallery_models, one_line_reason, readme_table, run_gallery, support_table
from gallery_expected import EXPECTED_FAILURES

GALLERY = gallery_models().GALLERY
pytestmark = [pytest.mark.slow, pytest.mark.prune, pytest.mark.onnxruntime, pytest.mark.openvino,
              pytest.mark.tensorrt]


@pytest.fixture(scope="module")
def gallery_runs(tmp_path_factory):
    """The whole gallery, run once (about 3.5 minutes on 2 shared cores)."""
    return {run.name: run for run in run_gallery(tmp_path_factory.mktemp("gallery"))}


@pytest.mark.parametrize("name", list(GALLERY))
def test_every_step_passes_or_fails_as_listed(gallery_runs, name):
    run = gallery_runs[name]
    assert set(run.steps) == set(STEPS), "every step is recorded, none skipped"
    problems = []
    for step in STEPS:
        got, known = run.steps[step], EXPECTED_FAILURES.get((name, step))
        if known is None and got.status != "ok":
            problems.append(f"{step} failed and is not in gallery_expected.py: {got.reason}")
        elif known is not None and got.status == "ok":
            problems.append(f"{step} passes now: take it out of gallery_expected.py and regenerate the README table")
        elif known is not None and known.reason not in got.reason:
            problems.append(f"{step} fails for another reason: {got.reason!r} (listed: {known.reason!r})")
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_readme_support_table_is_this_run(gallery_runs):
    table = support_table(list(gallery_runs.values()), EXPECTED_FAILURES)
    assert readme_table(README.read_text()) == table, \
        "README.md's gallery table is stale: .venv/bin/python tests/gallery/gallery.py --readme"


def test_listed_failures_name_gallery_steps_with_a_note():
    for (name, step), known in EXPECTED_FAILURES.items():
        assert name in GALLERY and step in STEPS, (name, step)
        assert known.reason.strip() and len(known.note) > 40, (name, step)


def test_one_line_reason_takes_the_error_line_or_the_crash(tmp_path):
    work = tmp_path / "w"
    stderr = (f"✓ resolve (1 s)\nerror: {work}/m.py:f: torch.export failed: UserError: boom (full log: "
              f"/tmp/edgekit-logs/x-1.log)\nhint: do this\n")
    assert one_line_reason(stderr, work) == "<work>/m.py:f: torch.export failed: UserError: boom"
    crash = "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: bad\n  shape\n"
    assert one_line_reason(crash, work) == "crash: RuntimeError: bad"
    assert one_line_reason("", work) == "crash: no output"


def test_support_table_numbers_each_reason_once_and_prints_its_note():
    from gallery import ModelRun, Step

    run = ModelRun("lstm_gru", "an RNN", params=None)
    blocked = Step("failed", "not run: x")
    run.steps = {"prune": Step("ok"), "onnx": Step("failed", "boom"), "openvino": blocked, "tensorrt": blocked,
                 "int8": Step("ok"), "validate": Step("ok")}
    table = support_table([run], EXPECTED_FAILURES)
    assert "| lstm_gru | an RNN | (unpruned) | ✓ | ✗ [1] | ✗ [2] | ✗ [2] | ✓ | ✓ |" in table
    assert "1. **lstm_gru** (onnx): `boom`. torch.export (torch 2.13)" in table
    assert "2. **lstm_gru** (openvino, tensorrt): `not run: x`. Follows from" in table
    other = support_table([ModelRun("new", "d", {s: Step("failed", "r") for s in STEPS}, (10, 5))], {})
    assert "| new | d | 10 → 5 | ✗ [1] |" in other and "Not triaged yet" in other
    assert Path(README).is_file()
