"""examples/cpp and examples/c: built with the commands `edgekit embed` prints, run on exported bundles,
they must reproduce the reference outputs (and exit paths) stored in the bundle's testdata, and fail
loudly when a reference disagrees. Plus a fast check of `edgekit embed` itself."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, manifest_of, run_cli
from native_build import LANGS, corrupt_reference, count_samples, executables, run_example  # noqa: F401  (executables: a fixture)

PLAIN_MODEL = '''
import torch
from torch import nn


class Plain(nn.Module):
    """No control flow: conv features and their spatial mean, two float outputs."""

    input_names = ("image",)
    output_names = ("features", "pooled")

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, image):
        y = self.head(torch.relu(self.conv(image)))
        return y, y.mean(dim=(2, 3))

    def example_inputs(self):
        return (torch.randn(1, 3, 16, 16),)


def build():
    torch.manual_seed(0)
    return Plain()
'''


@pytest.fixture(scope="session")
def plain_bundle(tmp_path_factory) -> Path:
    """A tiny conv net without If/Loop, exported to ONNX + OpenVINO with testdata."""
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source

    root = tmp_path_factory.mktemp("plain")
    (root / "plain_net.py").write_text(PLAIN_MODEL)
    out = root / "bundle"
    export_bundle(resolve_source(f"{root / 'plain_net.py'}:build"), out, ExportOptions(targets=("onnx", "openvino")))
    return out


def _export_tiny_zoo(tmp_path_factory, name: str) -> Path:
    """A tiny zoo model; its validation feeds drive every exit (rbqe) and N ∈ {1, mid, max} (storm)."""
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source
    from edgekit.zoo import load_zoo

    zoo = load_zoo()
    if name not in zoo:
        pytest.skip(f"zoo:{name} is not in this checkout")
    params = ",".join(f"{k}={v}" for k, v in zoo.get(name).tiny.items())
    out = tmp_path_factory.mktemp(name) / name
    export_bundle(resolve_source(f"zoo:{name}?{params}"), out, ExportOptions(targets=("onnx", "openvino")))
    return out


@pytest.fixture(scope="session")
def storm_bundle(tmp_path_factory) -> Path:
    return _export_tiny_zoo(tmp_path_factory, "storm")


@pytest.fixture(scope="session")
def rbqe_bundle(tmp_path_factory) -> Path:
    return _export_tiny_zoo(tmp_path_factory, "rbqe")


@pytest.mark.cpp
@pytest.mark.openvino
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name, path, expected", [
    ("storm", "num_steps", None),  # None: the manifest's set, which includes 1 and max_steps
    ("rbqe", "exit_index", [0, 1, 2, 3, 4]),
])
def test_example_reproduces_zoo_models(lang, name, path, expected, executables, request):
    bundle = request.getfixturevalue(f"{name}_bundle")
    rc, report, stderr = run_example(executables[lang], bundle)
    assert rc == 0, (report, stderr)
    assert report["status"] == "passed" and report["samples"] == count_samples(bundle)
    assert report["max_abs_err"] <= 1e-4
    assert report["paths"] == manifest_of(bundle)["validation"]["openvino"]["paths"]
    if expected is None:
        steps = report["paths"][path]
        max_steps = next(i for i in manifest_of(bundle)["inputs"] if i["name"] == path)["range"][1]
        assert min(steps) == 1 and max(steps) == max_steps
    else:
        assert report["paths"][path] == expected


@pytest.mark.cpp
@pytest.mark.openvino
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("which", ["plain", "toy"])
def test_example_reproduces_reference_outputs_and_paths(lang, which, executables, plain_bundle, toy_bundle):
    bundle = plain_bundle if which == "plain" else toy_bundle
    rc, report, stderr = run_example(executables[lang], bundle)
    assert rc == 0, (report, stderr)
    assert report["status"] == "passed" and report["mismatches"] == 0
    assert report["runtime"] == "openvino" and report["api"] == {"cpp": "c++", "c": "c"}[lang]
    assert report["model"] == "model.xml" and report["device"] == "CPU"
    assert report["samples"] == count_samples(bundle) >= 4
    assert report["max_abs_err"] <= 1e-4
    assert report["paths"] == manifest_of(bundle)["validation"]["openvino"]["paths"]
    if which == "toy":  # every branch and step count went through native code
        assert report["paths"]["exit_index"] == [0, 1]
        assert report["paths"]["num_steps"] == [1, 2, 3, 4]
    else:
        assert report["paths"] == {}


@pytest.mark.cpp
@pytest.mark.openvino
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("output, expected", [
    ("output", r"sample 0 output 'output': 1/3072 elements out of tolerance"),
    ("exit_index", r"sample 0 output 'exit_index': got \d, expected \d"),
])
def test_corrupted_reference_is_a_mismatch_and_a_failing_exit(lang, output, expected, executables, toy_bundle_copy):
    corrupt_reference(toy_bundle_copy, output)
    rc, report, stderr = run_example(executables[lang], toy_bundle_copy)
    assert rc == 1
    assert report["status"] == "failed" and report["mismatches"] == 1
    assert report["samples"] == count_samples(toy_bundle_copy)
    assert len(report["failures"]) == 1
    assert re.match(expected, report["failures"][0]), report["failures"]
    assert "mismatch: sample 0" in stderr
    if output == "output":
        assert report["max_abs_err"] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.cpp
@pytest.mark.openvino
@pytest.mark.parametrize("lang", LANGS)
def test_tolerance_flags_and_load_errors(lang, executables, toy_bundle, tmp_path):
    rc, report, _ = run_example(executables[lang], toy_bundle, "--atol", "0", "--rtol", "0")
    assert report["atol"] == 0 and report["rtol"] == 0
    assert rc == (0 if report["max_abs_err"] == 0 else 1)  # bit-exact or a mismatch: no silent pass
    rc, report, stderr = run_example(executables[lang], tmp_path / "missing")
    assert rc == 2 and report["status"] == "error" and "manifest.json" in report["error"]
    assert "error:" in stderr
    broken = tmp_path / "broken"
    shutil.copytree(toy_bundle, broken)
    (broken / "testdata" / "000.input.image.bin").write_bytes(b"\0" * 10)
    rc, report, _ = run_example(executables[lang], broken)
    assert rc == 2 and "000.input.image.bin: size does not match" in report["error"]


# --- edgekit embed (fast: no build) -----------------------------------------------------------------


@pytest.fixture
def stub_bundle(tmp_path) -> Path:
    """A manifest-only bundle: enough for `edgekit embed`, which plans and does not run."""
    from edgekit.bundle import MANIFEST, Manifest, write_json_atomic
    from edgekit.specs import TensorSpec

    root = tmp_path / "stub"
    root.mkdir()
    manifest = Manifest(source={"spec": "stub"}, inputs=[TensorSpec.from_json({"name": "x", "shape": [1], "dtype": "float32"})],
                        outputs=[TensorSpec.from_json({"name": "y", "shape": [1], "dtype": "float32"})],
                        artifacts={"openvino": {"path": "model.xml", "weights": "model.bin"}})
    write_json_atomic(root / MANIFEST, manifest.to_json())
    return root


@pytest.mark.openvino
@pytest.mark.parametrize("lang, exe", [("cpp", "edgekit_run"), ("c", "edgekit_run_c"), ("c++", "edgekit_run")])
def test_embed_prints_build_and_run_commands_for_this_machine(lang, exe, stub_bundle, tmp_path):
    build = tmp_path / "b"
    proc = run_cli("embed", stub_bundle, "--lang", lang, "--build-dir", build, "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    folder = "cpp" if exe == "edgekit_run" else "c"
    assert Path(plan["source_dir"], "CMakeLists.txt").is_file() and Path(plan["source_dir"]).name == folder
    assert Path(plan["openvino_dir"], "OpenVINOConfig.cmake").is_file()
    assert any(p.name.startswith("libopenvino") for p in Path(plan["lib_dir"]).iterdir())
    assert plan["configure"][:5] == ["cmake", "-S", plan["source_dir"], "-B", str(build)]
    assert f"-DOpenVINO_DIR={plan['openvino_dir']}" in plan["configure"]
    assert plan["build"][:3] == ["cmake", "--build", str(build)]
    assert plan["run"][:2] == [str(build / exe), str(stub_bundle)]
    assert plan["env"] == {"LD_LIBRARY_PATH": plan["lib_dir"]}
    assert plan["commands"][-1].startswith(f"LD_LIBRARY_PATH={plan['lib_dir']}")
    human = run_cli("embed", stub_bundle, "--lang", lang, "--build-dir", build)
    assert human.returncode == 0 and human.stdout == ""
    for line in plan["commands"]:
        assert line in human.stderr


def test_embed_errors_are_one_line(stub_bundle, tmp_path):
    proc = run_cli("embed", stub_bundle, "--lang", "rust")
    assert proc.returncode == 1 and "--lang 'rust': choose one of cpp, c" in proc.stderr
    proc = run_cli("embed", tmp_path, "--lang", "c")
    assert proc.returncode == 1 and "not a bundle" in proc.stderr


@pytest.mark.openvino
def test_readme_embedding_block_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- readme-test: embed -->\s*```console\n(.*?)```", text, re.S)
    assert block, "README block 'embed' not found"
    commands = [line[2:] for line in block.group(1).splitlines() if line.startswith("$ ")]
    assert [c.split()[1] for c in commands] == ["export", "embed"]
    for command in commands:
        result = run_cli(*shlex.split(command)[1:], cwd=tmp_path)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert "cmake -S " in result.stderr and "/edgekit_run " in result.stderr
