"""Sweep cells tuned before they are measured (issue #19, `[tune]`): the config, the plan (one tune task per
cell, on the cell's device, before its measure; untuned sweeps keep their cache keys), the feeds a cell is
measured at, and a tiny zoo:toy sweep end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from edgekit.sweep.cell import cell_feeds
from edgekit.sweep.config import ConfigError, load_config
from edgekit.sweep.plan import build_plan
from sweep_helpers import write_sweep

AXES = 'precision = ["fp32", "int8"]\nruntime = ["onnxruntime", "openvino"]\ndevice = ["local", "orin-nx"]'
TUNE = '[tune]\nbudget = 0.05\ndata = "tune.npz"\nsamples = 3\n'


def _toy_data(root):
    rng = np.random.default_rng(1)
    np.savez(root / "tune.npz", **{f"{i}/image": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
                                   for i in range(3)})


def test_tune_settings_are_read_and_checked(tmp_path):
    config = load_config(write_sweep(tmp_path, AXES, extra=TUNE))
    assert config.tune.budget == 0.05 and config.tune.samples == 3
    assert config.tune.data == str(tmp_path.resolve() / "tune.npz")  # relative to the config file
    assert load_config(write_sweep(tmp_path, AXES, name="plain")).tune is None
    for bad, message in (("budget = -1", "tune.budget = -1"), ("colour = 1", "[tune]: unknown key 'colour'"),
                         ('data = ""', "tune.data = ''")):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_config(write_sweep(tmp_path, AXES, name="bad", extra=f"[tune]\n{bad}\n"))


def test_every_cell_gets_a_tune_task_on_its_device_before_its_measure(tmp_path):
    tuned = build_plan(load_config(write_sweep(tmp_path, AXES, extra=TUNE)), "sha", lambda label: None)
    plain = build_plan(load_config(write_sweep(tmp_path, AXES, name="plain")), "sha", lambda label: None)
    tunes = {k: t for k, t in tuned.tasks.items() if t.kind == "tune"}
    assert len(tunes) == 8  # one per (precision, runtime, device): timed where the cell is benchmarked
    for cell in tuned.cells:
        measure = tuned.tasks[cell.task]
        (tune,) = [d for d in measure.deps if d in tunes]
        assert measure.payload["tune"] == tune and tunes[tune].device == measure.device
        assert tunes[tune].deps == (cell.export,) and tunes[tune].payload["runtime"] == measure.payload["runtime"]
    assert not any(t.kind == "tune" or "tune" in t.payload for t in plain.tasks.values())
    shared = set(tuned.tasks) & set(plain.tasks)  # prune/export/baseline/torch stages: the same cache entries
    assert {plain.tasks[k].kind for k in shared} == {"export", "baseline", "torch"}


def test_a_cell_is_measured_at_the_tuned_setting_unless_its_feeds_axis_says_otherwise():
    tune = {"setting": {"threshold": 0.6, "num_steps": 2}}
    assert cell_feeds({}, tune) == {"threshold": 0.6, "num_steps": 2}
    assert cell_feeds({"num_steps": 4}, tune) == {"threshold": 0.6, "num_steps": 4}
    assert cell_feeds({"num_steps": 4}, None) == {"num_steps": 4}


@pytest.mark.slow
@pytest.mark.onnxruntime
def test_a_tuned_toy_sweep_end_to_end(tmp_path):
    _toy_data(tmp_path)
    path = write_sweep(tmp_path, 'runtime = ["onnxruntime"]', extra=TUNE)
    result = run_cli("sweep", path, "--json", "--jobs", "1", "--report", tmp_path / "r.md", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    (cell,) = out["cells"]
    assert cell["status"] in ("ok", "over budget") and cell["p50_ms"] > 0
    assert set(cell["tuned"]) == {"threshold", "num_steps"}
    assert 1 <= cell["tuned"]["num_steps"] <= 4 and cell["tuned"]["threshold"] in [round(0.1 * i, 1) for i in
                                                                                    range(11)] + [1.01]
    assert out["stages"]["tune"]["ran"] == 1
    listed = ", ".join(f"{k}={v:g}" for k, v in cell["tuned"].items())
    assert f"`d=1 fp32 onnxruntime @local · tuned {listed}`" in (tmp_path / "r.md").read_text()



def test_each_device_gets_its_own_torch_row(tmp_path):
    """A device task's key includes its device: the `× vs torch` of a cell is timed where the cell runs
    (before, two routable devices shared one torch row, timed on whichever host ran it)."""
    plan = build_plan(load_config(write_sweep(tmp_path, AXES)), "sha", lambda label: None)
    torch = [t for t in plan.tasks.values() if t.kind == "torch"]
    assert sorted(t.device for t in torch) == ["local", "orin-nx"] and len({t.key for t in torch}) == 2
    for cell in plan.cells:
        measure = plan.tasks[cell.task]
        (row,) = [d for d in measure.deps if plan.tasks[d].kind == "torch"]
        assert plan.tasks[row].device == measure.device
