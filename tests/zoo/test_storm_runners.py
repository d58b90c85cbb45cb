"""zoo:storm exported: one Loop, validation over N ∈ {1, mid, max}, and a bad `num_steps` (0, > max_steps,
wrong dtype) is a clear error before running, in every runner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import manifest_of, run_cli
from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.runtimes import open_runner
from edgekit.validation.testdata import read_testdata

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime]


def test_storm_bundle_has_one_loop_and_validates_every_step_count(storm_bundle):
    m = manifest_of(storm_bundle)
    assert m["control_flow"] == {"If": 0, "Loop": 1}
    assert next(i for i in m["inputs"] if i["name"] == "num_steps")["range"] == [1, 4]
    # the score network's weights live in the Loop body (export/subgraph_weights.py), and still validate
    assert m["artifacts"]["onnx"]["subgraph_weights"]["moved"] > 0
    for runtime in ("onnxruntime", "openvino"):
        block = m["validation"][runtime]
        assert block["status"] == "passed" and block["max_rel_l2"] < 1e-5
        assert {1, 2, 4} <= set(block["paths"]["num_steps"])


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino"])
@pytest.mark.parametrize("bad, message", [
    (np.array(0, np.int64), "'num_steps' = 0 is outside its valid range [1, 4]"),
    (np.array(5, np.int64), "'num_steps' = 5 is outside its valid range [1, 4]"),
    (np.array(2, np.int32), "'num_steps' is int32, the model expects int64"),
])
def test_bad_num_steps_is_refused_before_running(storm_bundle, runtime, bad, message):
    feed = dict(read_testdata(storm_bundle)[0][0])
    feed["num_steps"] = bad
    with open_runner(Bundle.load(storm_bundle), runtime) as runner:
        with pytest.raises(EdgekitError, match=message.replace("[", r"\[").replace("]", r"\]")):
            runner.run(feed)


def test_bad_num_steps_on_the_command_line(storm_bundle):
    result = run_cli("validate", storm_bundle, "--feed", "num_steps=9", "--samples", "2")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'num_steps' = 9 is outside its valid range [1, 4]" in result.stderr
    ok = run_cli("validate", storm_bundle, "--feed", "num_steps=3", "--samples", "2", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["openvino"]["paths"]["num_steps"] == [3]
