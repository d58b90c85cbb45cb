"""Crash safety (issue #22): export, quantize and prune killed with SIGKILL at each stage leave nothing at
--out, and the next run reaps the dead run's `.NAME.partial-*` dir; a sweep's cache never uses a stage a
killed worker left half-written. The kill is real: the CLI runs as a child and gets SIGKILL the moment its
stderr reports the stage done (so it dies inside the next one)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "sweep"))  # sweep_helpers.CALIB: toy's int8 calibration feeds

pytestmark = [pytest.mark.slow, pytest.mark.onnxruntime, pytest.mark.openvino]

TOY = "zoo:toy?width=4,max_steps=4"


def _kill_after(args: list, marker: str, cwd) -> str:
    """Run `edgekit ARGS`, SIGKILL it when a stderr line contains `marker`; returns the stderr seen."""
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", *map(str, args)], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"never reached {marker!r}:\n{''.join(seen)[-2000:]}"
    return "".join(seen)


def _left(out) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


# (what ran, the stage whose completion triggers the kill); every command writes through staged_bundle
KILL_POINTS = [
    ("export-onnx-source", "onnx: copy source"),
    ("export-onnx-source", "openvino: build"),
    ("export-onnx-source", "reference: onnxruntime"),
    ("export-onnx-source", "validate openvino"),  # the kill lands while the manifest is written and renamed
    ("export-torch-source", "torch.export → onnx"),
    ("quantize", "onnx: reuse"),
    ("quantize", "int8: calibration data"),
    ("prune", "prune to density"),  # killed while the pruned model is being torch.exported
]


def _command(what: str, toy_bundle, out, tmp):
    if what == "export-onnx-source":
        return ["export", toy_bundle / "model.onnx", "--target", "onnx", "--target", "openvino", "--out", out]
    if what == "export-torch-source":
        return ["export", TOY, "--target", "onnx", "--out", out]
    if what == "quantize":
        from sweep_helpers import CALIB

        (tmp / "calib.py").write_text(CALIB)
        return ["quantize", toy_bundle, "--calib", f"{tmp / 'calib.py'}:feeds", "--calib-samples", "4", "--samples",
                "2", "--out", out]
    return ["prune", "zoo:rbqe?width=8,weights=none", "--density", "0.5", "--steps", "1", "--recover-minutes", "0",
            "--rank", "4", "--out", out]


@pytest.mark.parametrize("what, marker", KILL_POINTS, ids=[f"{w}@{m.split(':')[0].split(' ')[0]}-{i}"
                                                             for i, (w, m) in enumerate(KILL_POINTS)])
def test_sigkill_at_each_stage_leaves_nothing_at_out(toy_bundle, tmp_path, what, marker):
    if what == "prune":
        pytest.importorskip("torch_pruning")
    out = tmp_path / "out"
    _kill_after(_command(what, toy_bundle, out, tmp_path), marker, ROOT)
    assert not out.exists(), f"a bundle appeared at --out after SIGKILL at {marker!r}"
    if what != "prune":  # prune stages its directory just after pruning: killed around then, it may leave nothing
        assert [n for n in _left(out) if n.startswith(".out.partial-")] == _left(out) != [], _left(out)
    else:
        assert all(n.startswith(".out.partial-") for n in _left(out)), _left(out)


def test_the_next_run_reaps_a_killed_runs_staging_dir(toy_bundle, tmp_path):
    out = tmp_path / "out"
    args = ["export", toy_bundle / "model.onnx", "--target", "onnx", "--out", out]
    _kill_after(args, "onnx: copy source", ROOT)
    assert len(_left(out)) == 1
    result = subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (out / "manifest.json").is_file() and _left(out) == []


def test_sweep_cache_never_uses_a_half_written_stage(tmp_path):
    from edgekit.sweep.cache import StageCache

    cache = StageCache(tmp_path)
    killed = cache.fresh_dir("export", "k1")  # a worker killed mid-stage: files, no result.json
    (killed / "bundle").mkdir()
    assert cache.get("export", "k1") is None
    for text in ("", '{"status": "ok", "bun', "[1]", '{"status": "failed"}', "\xff\xfe"):
        (killed / "result.json").write_text(text, errors="surrogateescape")
        assert cache.get("export", "k1") is None, text
    cache.put("export", "k1", {"status": "ok", "bundle": "x"})
    assert cache.get("export", "k1") == {"status": "ok", "bundle": "x"}
    assert not list(killed.glob(".result.json.tmp*"))  # written whole, then renamed


def test_sweep_redoes_a_cached_bundle_that_no_longer_matches(toy_bundle_copy, tmp_path):
    from edgekit.sweep.stages import _intact

    hit = {"status": "ok", "bundle": str(toy_bundle_copy)}
    assert _intact(hit)
    (toy_bundle_copy / "model.xml").write_text("<net/>")
    assert not _intact(hit)
    assert _intact(hit, verify=False)  # `sweep --no-verify`: used as it is, only its manifest must load
    (toy_bundle_copy / "manifest.json").write_text("{")
    assert not _intact(hit, verify=False)
    assert _intact({"status": "ok", "metric": "cosine"})  # stages without a bundle
    json.dumps(hit)


def test_a_hung_sweep_stage_times_out_and_the_others_still_run(tmp_path):
    from edgekit.sweep.executors import LocalExecutor
    from edgekit.sweep.plan import SweepPlan, Task

    (tmp_path / "hang.py").write_text("import time\n\n\ndef build():\n    time.sleep(600)\n")
    (tmp_path / "bad.py").write_text("def build():\n    raise ValueError('broken factory')\n")
    plan = SweepPlan()
    for key, source in (("hung", f"{tmp_path / 'hang.py'}:build"), ("quick", f"{tmp_path / 'bad.py'}:build")):
        plan.add(Task(key, "baseline", key, {"kind": "baseline", "key": key, "label": key, "cache": str(tmp_path / "c"),
                                            "source": source, "metric": None, "feeds": {}}))
    done = {}
    results = LocalExecutor(jobs=2, timeout_s=20).run(plan, lambda task, result: done.setdefault(task.key, result))
    assert results["hung"]["status"] == "failed" and results["hung"]["reason"].startswith("timed out after 20 s")
    assert results["quick"]["status"] == "failed" and "broken factory" in results["quick"]["reason"]
    assert set(done) == {"hung", "quick"}


def test_a_killed_sweep_leaves_no_result_no_orphan_workers_and_resumes_from_its_cache(tmp_path):
    """SIGKILL to `edgekit sweep` once a stage has finished: no sweep.json, its worker processes go too
    (they watch their parent), and the next run reuses the finished stage and completes."""
    import psutil

    from sweep_helpers import write_sweep

    path = write_sweep(tmp_path, 'runtime = ["onnxruntime"]')
    args = [sys.executable, "-m", "edgekit.cli", "sweep", str(path), "--jobs", "1"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, workers = [], []
    try:
        for line in proc.stderr:
            seen.append(line)
            if "✓" in line:  # one stage done and cached; the pool's worker is busy with the next
                workers = psutil.Process(proc.pid).children(recursive=True)
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-2000:]
    assert workers, "the sweep had no worker process to orphan"
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"orphaned sweep workers still running: {[p.pid for p in alive]}"
    assert not (tmp_path / "sweep" / "sweep.json").exists()
    finished = seen[-1].split("✓")[1].split("(")[0].strip()

    result = subprocess.run(args + ["--json"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{finished} (cached)" in result.stderr
    cells = json.loads(result.stdout)["cells"]
    assert [c["status"] for c in cells] == ["ok"] and (tmp_path / "sweep" / "sweep.json").is_file()
