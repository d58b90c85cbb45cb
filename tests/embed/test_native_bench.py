"""Native benchmarks (issue #24): the C++/C runners' `--bench` on zoo:toy (If + Loop), its rows against
`edgekit bench --json`'s, `edgekit bench --native`, bad input (exit 2, one error line), a model failing
its testdata never timed, and `edgekit pack` run under `env -i` from an empty folder. No test asserts a
timing: only that timings exist and are ordered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from native_build import LANGS, executables  # noqa: F401  (executables: a fixture)

pytestmark = [pytest.mark.openvino]
API = {"cpp": "c++", "c": "c"}


def _bench(executable: Path, bundle: Path, *flags: str) -> tuple[int, dict | None, str]:
    proc = subprocess.run([str(executable), str(bundle), "--bench", *flags], capture_output=True, text=True,
                          timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.returncode, json.loads(lines[0]), proc.stderr


def _ordered(latency: dict) -> bool:
    return 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]


@pytest.fixture(scope="module")
def cli_run(toy_bundle, executables):
    """`edgekit bench --native cpp,c` with --json: the Python OpenVINO rows and both native rows, one run.
    `executables` built the runners where --native looks for them, so nothing is rebuilt here."""
    result = run_cli("bench", toy_bundle, "--runtime", "openvino", "--precision", "fp32", "--native", "cpp,c",
                     "--iters", "3", "--warmup", "1", "--feed", "num_steps=2", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_native_rows_have_the_keys_of_edgekit_bench_rows(cli_run):
    rows = cli_run["results"]
    python = next(r for r in rows if r["api"] == "python" and r["mode"] == "latency")
    native = {r["api"]: r for r in rows if r["api"] != "python"}
    assert set(native) == {"c++", "c"} and cli_run["native"] == ["cpp", "c"]
    for api, row in native.items():
        assert set(row) == set(python), (api, set(row) ^ set(python))
        assert set(row["latency_ms"]) == set(python["latency_ms"])
        assert row["status"] == "ok", row
        assert (row["runtime"], row["mode"], row["iters"], row["batch"]) == ("openvino", "latency", 3, 1)
        assert (row["device"], row["artifact"], row["precision"]) == ("CPU", "model.xml", "fp32")
        assert row["device"] == python["device"] and row["artifact"] == python["artifact"]
        assert _ordered(row["latency_ms"]) and row["throughput"] > 0 and row["load_ms"] > 0
        assert row["peak_rss_mb"] >= row["rss_before_load_mb"] > 0
        assert row["pid"] != cli_run["pid"] and row["pid"] != python["pid"]
        assert row["size_mb"] == pytest.approx(python["size_mb"])


@pytest.mark.parametrize("lang", LANGS)
def test_bench_checks_testdata_then_times_the_feed(lang, executables, toy_bundle):
    rc, doc, _ = _bench(executables[lang], toy_bundle, "--iters", "4", "--warmup", "1", "--sample", "1",
                        "--feed", "num_steps=3", "--feed", "threshold=0.25", "--threads", "1")
    assert rc == 0, doc
    check = doc["check"]
    stored = json.loads((toy_bundle / "testdata" / "index.json").read_text())["samples"]
    assert check["status"] == "passed" and check["samples"] == len(stored) and check["mismatches"] == 0
    # the testdata drives both branches of the If and several Loop trip counts
    assert set(check["paths"]["exit_index"]) == {0, 1} and len(check["paths"]["num_steps"]) > 1
    assert doc["feed"] == {"num_steps": 3, "threshold": 0.25} and doc["sample"] == 1
    assert doc["inputs"]["image"] == {"shape": [1, 3, 32, 32], "dtype": "float32"}
    assert doc["settings"]["iters"] == 4 and doc["settings"]["threads"] == 1 and doc["api"] == API[lang]
    (row,) = doc["results"]
    assert row["api"] == API[lang] and row["iters"] == 4 and _ordered(row["latency_ms"])


def _corrupt_manifest(bundle: Path) -> None:
    (bundle / "manifest.json").write_text("{ not json")


BAD_INPUT = [
    ("missing sample", ["--sample", "99"], None, "--sample 99"),
    ("unknown feed", ["--feed", "nope=1"], None, "'nope'"),
    ("feed not a number", ["--feed", "num_steps=many"], None, "not a number"),
    ("feed not an integer", ["--feed", "num_steps=2.5"], None, "not an integer"),
    ("feed on a tensor", ["--feed", "image=1"], None, "scalars only"),
    ("feed without a value", ["--feed", "num_steps"], None, "NAME=VALUE"),
    ("zero iterations", ["--iters", "0"], None, "--iters"),
    ("unreadable bundle", [], _corrupt_manifest, "manifest.json"),
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("case, flags, damage, needle", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_2_with_one_error_line(lang, case, flags, damage, needle, executables, toy_bundle, tmp_path):
    bundle = toy_bundle
    if damage:
        bundle = tmp_path / "toy"
        shutil.copytree(toy_bundle, bundle)
        damage(bundle)
    rc, doc, stderr = _bench(executables[lang], bundle, "--iters", "2", *flags)
    assert rc == 2 and doc["status"] == "error", (case, doc)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (case, stderr)


@pytest.mark.parametrize("lang", LANGS)
def test_a_model_failing_its_testdata_is_not_benchmarked(lang, executables, toy_bundle, tmp_path):
    from edgekit.bench.stats import BenchSettings
    from edgekit.native.bench import bench_argv, run_bench_argv

    bundle = tmp_path / "toy"
    shutil.copytree(toy_bundle, bundle)
    entry = json.loads((bundle / "testdata" / "index.json").read_text())["samples"][0]["outputs"]["output"]
    ref = bundle / "testdata" / entry["file"]
    data = np.fromfile(ref, dtype=entry["dtype"])
    (data + 1.0).astype(entry["dtype"]).tofile(ref)  # the reference no longer matches the model
    rc, doc, stderr = _bench(executables[lang], bundle, "--iters", "2", "--no-verify")
    assert rc == 1 and doc["status"] == "failed" and "results" not in doc, doc
    assert "not benchmarking" in stderr
    row, full = run_bench_argv(bench_argv(executables[lang], bundle, BenchSettings(1, 2), {}, verify=False), lang, 120)
    assert row.status == "failed" and "testdata check failed" in row.reason and full is None


def test_pack_runs_under_env_i_from_an_empty_folder(toy_bundle, executables, tmp_path):
    """The C runner (the faster build) packed, unpacked into an empty folder and run with no environment:
    no PATH, no LD_LIBRARY_PATH, no Python; every library it maps comes from the pack."""
    tarball = tmp_path / "toy.tar.gz"
    killed = tmp_path / ".toy.tar.gz.partial-999999999-x"  # a pack that was killed (no such pid)
    (killed / "lib").mkdir(parents=True)
    result = run_cli("pack", toy_bundle, "--lang", "c", "--out", tarball, "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    assert not killed.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["toy.tar.gz"]
    info = json.loads(result.stdout)
    assert info["size_bytes"] == tarball.stat().st_size and "libopenvino_intel_cpu_plugin.so" in info["libs"]
    device = tmp_path / "device"
    device.mkdir()
    with tarfile.open(tarball) as tar:
        tar.extractall(device, filter="data")
    (root,) = device.iterdir()
    assert not any("model.pt2" in f or f.endswith(".py") for f in info["files"])
    proc = subprocess.run(["env", "-i", "./run.sh", "--iters", "3", "--warmup", "1"], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["check"]["status"] == "passed" and doc["results"][0]["status"] == "ok"
    assert doc["results"][0]["iters"] == 3 and doc["api"] == "c"
    maps = subprocess.run(["env", "-i", "ldd", str(root / info["runner"])], capture_output=True, text=True).stdout
    from_host = [line for line in maps.splitlines() if "openvino" in line or "cjson" in line or "tbb" in line]
    assert from_host and all(str(root / "lib") in line for line in from_host), maps
    bad = subprocess.run(["env", "-i", "./run.sh", "--sample", "99"], cwd=root, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, needle", [
    (["pack", "{bundle}", "--runtime", "tensorrt"], "--runtime tensorrt"),
    (["pack", "{bundle}", "--lang", "rust"], "--lang 'rust'"),
    (["pack", "{bundle}", "--out", "{exists}"], "already exists"),
    (["pack", "{tmp}/nothing"], "manifest.json"),
    (["bench", "{bundle}", "--native", "rust"], "--native rust"),
])
def test_pack_and_native_bad_input_is_one_line(argv, needle, toy_bundle, tmp_path):
    (tmp_path / "exists.tar.gz").write_text("")
    names = {"bundle": toy_bundle, "exists": tmp_path / "exists.tar.gz", "tmp": tmp_path}
    result = run_cli(*(a.format(**names) for a in argv))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_readme_native_block_runs(executables, tmp_path):
    """README's "Benchmarks without Python" commands, as written (the C runner: the faster build)."""
    import re
    import shlex

    from conftest import ROOT

    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- readme-test: native -->\s*```console\n(.*?)```", text, re.S)
    assert block, "README block 'native' not found"
    commands = [line[2:] for line in block.group(1).splitlines() if line.startswith("$ ")]
    assert [c.split()[1] for c in commands] == ["export", "bench", "pack"]
    env = {**os.environ, "COLUMNS": "250"}  # rich's table: wide enough to show every column
    for command in commands:
        result = subprocess.run([sys.executable, "-m", "edgekit.cli", *shlex.split(command)[1:]], cwd=tmp_path,
                                capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        if command.split()[1] == "bench":
            assert "openvino (c)" in result.stderr, result.stderr  # the native row, labelled with its API
    assert (tmp_path / "toy-pack.tar.gz").is_file()
