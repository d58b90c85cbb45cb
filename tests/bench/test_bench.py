"""`edgekit bench`: the JSON schema, the Markdown report, the plot, unavailable rows, --feed and --batch,
and per-row child processes. No test asserts a timing: the machine running them may be busy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli

pytestmark = [pytest.mark.onnxruntime, pytest.mark.openvino]

RESULT_KEYS = {
    "runtime": str, "status": str, "precision": str, "mode": str, "iters": int, "batch": int, "requests": int,
    "latency_ms": dict, "throughput": float, "vs_torch": float, "load_ms": float, "import_ms": float,
    "size_mb": float, "peak_rss_mb": float, "rss_before_load_mb": float, "pid": int, "clock": str,
}
LATENCY_KEYS = {"min", "p50", "p90", "p99", "mean", "max", "stdev"}


@pytest.fixture(scope="module")
def full_run(toy_bundle, tmp_path_factory):
    """One run over every runtime with --json, --report and --plot (spawning children is the slow part)."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("bench")
    result = run_cli("bench", toy_bundle, "--iters", "5", "--warmup", "1", "--feed", "num_steps=2", "--json",
                     "--static-shapes", "--report", out / "report.md", "--plot", out / "latency.png")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), out, result.stderr


def test_json_schema_every_runtime_and_torch_ratio(full_run):
    data, _, _ = full_run
    assert {"bundle", "feed", "results", "settings", "machine", "inputs", "pid"} <= set(data)
    assert data["feed"] == {"num_steps": 2} and data["settings"]["iters"] == 5
    rows = data["results"]
    assert {r["runtime"] for r in rows} == {"torch", "onnxruntime", "openvino"}
    for row in rows:
        assert row["status"] == "ok", row
        for key, kind in RESULT_KEYS.items():
            assert isinstance(row[key], (int, float) if kind is float else kind), (key, row)
        assert set(row["latency_ms"]) == LATENCY_KEYS
        lat = row["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert row["iters"] == 5 and row["throughput"] > 0 and row["size_mb"] > 0
    torch_row = next(r for r in rows if r["runtime"] == "torch")
    assert torch_row["vs_torch"] == pytest.approx(1.0)
    throughput = [r for r in rows if r["runtime"] == "openvino" and r["mode"] == "throughput"]
    assert len(throughput) == 1 and throughput[0]["requests"] >= 1
    static = [r for r in rows if r["mode"] == "static"]  # --static-shapes: OpenVINO compiled at the feed's shapes
    assert [r["runtime"] for r in static] == ["openvino"] and data["settings"]["static_shapes"] is True
    assert static[0]["vs_torch"] == pytest.approx(static[0]["latency_ms"]["p50"] / torch_row["latency_ms"]["p50"])


def test_each_row_measured_in_its_own_child_with_its_own_peak_memory(full_run):
    data, _, _ = full_run
    pids = [r["pid"] for r in data["results"]]
    assert data["pid"] not in pids and len(set(pids)) == len(pids)
    for row in data["results"]:
        assert row["peak_rss_mb"] >= row["rss_before_load_mb"] > 0
    peaks = {r["runtime"]: r["peak_rss_mb"] for r in data["results"] if r["mode"] == "latency"}
    # torch's own import is ~100s of MB; onnxruntime's child never imports torch: isolation, not timing
    assert peaks["torch"] > peaks["onnxruntime"]


def test_bf16_row_is_validated_when_the_cpu_has_bf16(full_run):
    from edgekit.env import cpu_info

    data, _, _ = full_run
    bf16 = [r for r in data["results"] if r["precision"] == "bf16"]
    if not {"avx512_bf16", "amx_bf16"} & set(cpu_info()["isa"]):
        assert not bf16
        pytest.skip("this CPU has no bf16 ISA: no bf16 row offered")
    (row,) = bf16
    assert row["runtime"] == "openvino" and row["validation"]["max_rel_l2_allowed"] == 2e-2
    # the row must be validated, pass, and really compute in bf16: an fp32 run would be ~1e-7 off, not ~1e-3
    assert row["status"] == "ok" and row["validation"]["status"] == "passed", row
    assert row["validation"]["samples"] >= 1
    assert 1e-5 < row["validation"]["max_rel_l2"] <= 2e-2, row["validation"]


def test_report_has_machine_and_table_rows(full_run):
    data, out, _ = full_run
    text = (out / "report.md").read_text()
    cpu = data["machine"]["cpu"]
    assert "## Machine" in text and cpu["model"] in text and f"| cores | {cpu['cores']} |" in text
    assert all(flag in text for flag in cpu["isa"])
    assert f"| torch | {data['machine']['backends']['torch']} |" in text
    table_rows = [line for line in text.splitlines() if line.startswith(("| torch |", "| onnxruntime |",
                                                                           "| openvino |"))]
    modes = ("| latency |", "throughput", "| static |")
    assert len([r for r in table_rows if any(mode in r for mode in modes)]) == len(data["results"])
    assert "static: OpenVINO compiled at this feed's shapes" in text  # the note that says what the mode is


def test_plot_is_a_png(full_run):
    _, out, stderr = full_run
    png = (out / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert "edgekit bench" in stderr  # the table went to stderr, JSON alone to stdout


def test_tensorrt_without_engines_is_an_unavailable_row(toy_bundle):
    result = run_cli("bench", toy_bundle, "--runtime", "tensorrt", "--iters", "2", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["results"]
    assert row["runtime"] == "tensorrt" and row["status"] == "unavailable"
    assert "no tensorrt artifact" in row["reason"] and row["latency_ms"] == {} and row["vs_torch"] is None
    assert "tensorrt: unavailable: the bundle has no tensorrt artifact" in result.stderr


@pytest.mark.parametrize("steps", [1, 8])
def test_feed_is_applied(toy_bundle, steps):
    result = run_cli("bench", toy_bundle, "--runtime", "onnxruntime", "--iters", "3", "--warmup", "0",
                     "--feed", f"num_steps={steps}", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["feed"] == {"num_steps": steps} and data["results"][0]["status"] == "ok"
    assert data["results"][0]["vs_torch"] is None  # torch not in this run: no ratio made up


def test_batch_on_a_static_batch_dim_is_a_clear_error(toy_bundle):
    result = run_cli("bench", toy_bundle, "--batch", "4", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert "--batch 4: input 'image' has a static batch dimension 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_feed_name_is_a_clear_error(toy_bundle):
    result = run_cli("bench", toy_bundle, "--feed", "nope=1")
    assert result.returncode == 1 and "the model has no input 'nope'" in result.stderr


# --- in-process units (no children) --------------------------------------------------------------


def test_tile_batch_repeats_dynamic_inputs_only():
    from edgekit.bench.plan import tile_batch
    from edgekit.specs import TensorSpec

    specs = [TensorSpec("x", ("batch", 3), "float32"), TensorSpec("t", (), "float32")]
    feed = {"x": np.arange(3, dtype=np.float32)[None], "t": np.asarray(0.5, dtype=np.float32)}
    tiled = tile_batch(feed, specs, 4)
    assert tiled["x"].shape == (4, 3) and np.all(tiled["x"] == feed["x"]) and tiled["t"].shape == ()


def test_time_calls_excludes_warmup_and_counts_iters():
    from edgekit.bench.stats import latency_stats, time_calls

    calls = []
    samples = time_calls(lambda: calls.append(1), warmup=3, iters=7, seconds=None)
    assert len(calls) == 10 and len(samples) == 7
    assert set(latency_stats(samples)) == LATENCY_KEYS


def test_time_calls_stops_at_the_time_budget_but_not_before_min_iters():
    import time

    from edgekit.bench.stats import time_calls

    slow = time_calls(lambda: time.sleep(0.02), warmup=0, iters=200, seconds=0.05, min_iters=10)
    assert len(slow) == 10  # 10 calls take 0.2 s, past the 0.05 s budget: the floor decides
    fast = time_calls(lambda: None, warmup=0, iters=25, seconds=30.0, min_iters=10)
    assert len(fast) == 25  # the count comes first
    timed = time_calls(lambda: time.sleep(0.01), warmup=0, iters=None, seconds=0.1)
    assert 3 <= len(timed) <= 11


def test_bench_settings_default_is_bounded_and_iters_forces_a_count():
    from edgekit.bench.stats import DEFAULT_ITERS, DEFAULT_MIN_ITERS, DEFAULT_SECONDS, BenchSettings

    default = BenchSettings.from_options(10, None, None)
    assert (default.iters, default.seconds, default.min_iters) == (DEFAULT_ITERS, DEFAULT_SECONDS, DEFAULT_MIN_ITERS)
    forced = BenchSettings.from_options(10, 500, None)
    assert (forced.iters, forced.seconds) == (500, None)
    budget = BenchSettings.from_options(10, None, 2.5)
    assert (budget.iters, budget.seconds) == (None, 2.5)


def test_plan_offers_bf16_only_with_the_isa(toy_bundle):
    from edgekit.bench.plan import plan_cases
    from edgekit.bundle import Bundle

    bundle = Bundle.load(toy_bundle)
    with_isa = plan_cases(bundle, ["openvino"], isa=["amx_bf16"])
    without = plan_cases(bundle, ["openvino"], isa=["avx2"])
    assert [(c.precision, c.mode) for c in with_isa] == [("fp32", "latency"), ("fp32", "throughput"),
                                                        ("bf16", "latency")]
    assert [c.precision for c in without] == ["fp32", "fp32"]
    static = plan_cases(bundle, ["openvino"], isa=["avx2"], static_shapes=True)
    assert [(c.mode, c.options.get("static_shapes")) for c in static] == [("latency", None), ("throughput", None),
                                                                         ("static", True)]
    forced = plan_cases(bundle, ["openvino"], precisions=["bf16"], isa=["avx2"])
    assert forced[-1].precision == "bf16" and "avx512_bf16" in forced[-1].unavailable


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins

    from edgekit.bench.report import require_matplotlib
    from edgekit.errors import EdgekitError

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(EdgekitError, match=r"edgekit\[bench\]"):
        require_matplotlib()
