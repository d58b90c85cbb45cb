"""`edgekit sweep` with `[bench] native` (issue #24): the openvino cells are timed by the C runner given as
`native_runner` (as a packed runner on a device host would be), the metric still comes from Python; a
cell whose shape is not the testdata sample's fails alone, with the reason."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from native_build import executables  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.openvino]

SWEEP = """
source = "zoo:toy?width=4,max_steps=4"
out = "out"
cache = "cache"
[axes]
runtime = ["openvino"]
shape = ["1x3x32x32", "1x3x16x16"]
[axes.feeds]
num_steps = [2]
[export]
samples = 2
[bench]
iters = 3
warmup = 1
native = "c"
native_runner = "{runner}"
"""


def test_sweep_times_openvino_cells_with_the_native_runner(executables, tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.format(runner=executables["c"]))
    proc = run_cli("sweep", path, "--json", timeout=900)
    result = json.loads(proc.stdout)
    cells = {c["axes"]["shape"]: c for c in result["cells"]}
    same, other = cells["1x3x32x32"], cells["1x3x16x16"]
    assert same["status"] == "ok" and same["api"] == "c", same
    assert same["p50_ms"] > 0 and same["value"] == pytest.approx(1.0) and same["vs_torch"] > 0
    assert other["status"] == "failed" and "testdata sample" in other["reason"], other
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # a failed cell makes the sweep exit 1
