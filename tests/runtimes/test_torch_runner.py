"""The torch runner runs a zoo model as users run it (eager) when its weights are the exported ones,
and the bundle's saved program otherwise."""

from __future__ import annotations

import json

import numpy as np

from edgekit.bundle import Bundle
from edgekit.runtimes import open_runner
from edgekit.validation.testdata import read_testdata


def test_eager_zoo_module_when_weights_match_else_saved_program(toy_bundle_copy):
    bundle = Bundle.load(toy_bundle_copy)
    inputs, reference = read_testdata(toy_bundle_copy)[1]
    with open_runner(bundle, "torch") as eager:
        assert type(eager._module).__name__ == "ToyExitRefiner"
        got = eager.run(inputs)
    assert np.abs(got["output"] - reference["output"]).max() < 1e-5
    manifest = json.loads((toy_bundle_copy / "manifest.json").read_text())
    manifest["source"]["sha256"] = "0" * 64  # the zoo's weights no longer match the export
    (toy_bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with open_runner(Bundle.load(toy_bundle_copy), "torch") as saved:
        assert type(saved._module).__name__ != "ToyExitRefiner"
        got = saved.run(inputs)
    assert np.array_equal(got["exit_index"], reference["exit_index"])
    assert np.abs(got["output"] - reference["output"]).max() < 1e-5
