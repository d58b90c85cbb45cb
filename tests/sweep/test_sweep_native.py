"""`[bench] native` (issue #24): the config checks, and what it changes in the task graph: only the measure
stages' keys and payloads; the torch row and sweeps without it keep their keys (and their cache)."""

from __future__ import annotations

import pytest

from edgekit.sweep.checks import ConfigError
from edgekit.sweep.config import load_config
from edgekit.sweep.plan import build_plan
from sweep_helpers import write_sweep

AXES = 'runtime = ["onnxruntime", "openvino"]'


def _with_bench(tmp_path, lines: str, name: str = "sweep"):
    path = write_sweep(tmp_path, AXES, name=name)
    path.write_text(path.read_text().replace("[bench]\n", f"[bench]\n{lines}\n"))
    return path


@pytest.mark.parametrize("lines, message", [
    ('native = "rust"', "bench.native = 'rust': expected one of cpp, c"),
    ('native = 3', "bench.native = 3: expected a non-empty string"),
    ('native_runner = "pack/edgekit_run"', "bench.native_runner needs bench.native"),
])
def test_bad_native_settings_are_named(tmp_path, lines, message):
    with pytest.raises(ConfigError) as info:
        load_config(_with_bench(tmp_path, lines))
    assert message in str(info.value) and str(tmp_path) in str(info.value)


def test_native_runner_is_relative_to_the_config(tmp_path):
    config = load_config(_with_bench(tmp_path, 'native = "c"\nnative_runner = "pack/edgekit_run_c"'))
    assert config.bench.native == "c"
    assert config.bench.native_runner == str(tmp_path.resolve() / "pack" / "edgekit_run_c")


def test_native_changes_only_the_measure_stages(tmp_path):
    def tasks(config):
        plan = build_plan(config, "sha", lambda label: None, "m")
        return {t.kind + " " + t.label: (k, t.payload) for k, t in plan.tasks.items()}

    python = tasks(load_config(write_sweep(tmp_path, AXES, name="python")))
    native = tasks(load_config(_with_bench(tmp_path, 'native = "cpp"', name="native")))
    assert python.keys() == native.keys()
    for label, (key, payload) in python.items():
        other_key, other = native[label]
        if label.startswith("measure"):
            assert other_key != key and other["bench"]["native"] == "cpp", label
            assert "native_runner" not in other["bench"]  # unset keys stay out of the key
        else:
            assert other_key == key, label  # torch row, exports, baseline: shared with a Python sweep
        if label.startswith(("torch", "measure")):
            assert "native" not in payload["bench"] and set(payload["bench"]) == {"iters", "warmup", "threads"}
