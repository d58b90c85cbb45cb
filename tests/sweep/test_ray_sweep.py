"""A sweep on a local Ray instance (2 CPUs) declaring a fake device, `device:fake-npu`: benchmark tasks
must land where that resource is (and say so), a label no node declares must fail its cells alone, and
a cell failing inside its task must not stop the others, and a stage that hangs fails at its deadline."""

from __future__ import annotations

import pytest

from sweep_helpers import write_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.onnxruntime]


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, resources={"device:fake-npu": 1}, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_sweep_routes_benchmarks_by_device_resource(tmp_path, ray_instance):
    from edgekit.sweep import load_config, run_sweep
    from edgekit.sweep.executors import RayExecutor

    path = write_sweep(tmp_path, 'runtime = ["onnxruntime"]\nshape = ["1x3x16x16", "1x4x16x16"]\n'
                                 'device = ["fake-npu", "ghost"]')
    finished = []
    executor = RayExecutor("auto")
    result = run_sweep(load_config(path), executor, on_done=lambda task, r: finished.append((task, r)))
    executor.close()  # attached to the test's instance: must leave it running
    assert ray_instance.is_initialized()

    cells = {(c.axes["shape"], c.axes["device"]): c for c in result.cells}
    ok = cells[("1x3x16x16", "fake-npu")]
    assert ok.status == "ok" and ok.p50_ms > 0, ok.reason
    assert ok.where["resources"].get("device:fake-npu") == 1.0  # what Ray's scheduler assigned the task
    bad_shape = cells[("1x4x16x16", "fake-npu")]
    assert bad_shape.status == "failed" and "axis 1 is fixed at 3" in bad_shape.reason
    for shape in ("1x3x16x16", "1x4x16x16"):
        ghost = cells[(shape, "ghost")]
        assert ghost.status == "failed" and "no host with device:ghost in the Ray cluster" in ghost.reason

    # every device task ran holding the device resource; the other stages ran without it
    for task, r in finished:
        assert r["status"] == "ok" or "1x4x16x16" in task.label, (task.label, r.get("reason"))
        if r.get("skipped"):  # its upstream (the bad shape's torch row) failed: it never started
            continue
        resources = r["where"]["resources"]
        if task.device:
            assert resources.get("device:fake-npu") == 1.0 and "CPU" not in resources
        else:
            assert "device:fake-npu" not in resources and resources.get("CPU") == 1.0
    assert {t.kind for t, _ in finished} == {"export", "baseline", "torch", "measure"}
    assert result.executor == "ray" and result.recommended == {"fake-npu": ok.id}


def test_a_hung_ray_stage_fails_at_its_deadline_and_the_others_still_run(tmp_path, ray_instance):
    """Interruptible hangs end by SIGALRM inside the stage (the worker lives on); a stage that blocks the
    signal is ended by the watchdog, which exits the worker: both fail with a reason, the others run."""
    from edgekit.sweep.executors import RayExecutor
    from edgekit.sweep.plan import SweepPlan, Task

    (tmp_path / "hang.py").write_text("import time\n\n\ndef build():\n    time.sleep(600)\n")
    (tmp_path / "stuck.py").write_text("import signal, time\n\n\ndef build():\n"
                                       "    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
                                       "    time.sleep(600)\n")
    (tmp_path / "bad.py").write_text("def build():\n    raise ValueError('broken factory')\n")
    plan = SweepPlan()
    for key in ("hang", "stuck", "bad"):
        plan.add(Task(key, "baseline", key, {"kind": "baseline", "key": key, "label": key, "cache": str(tmp_path / "c"),
                                            "source": f"{tmp_path / key}.py:build", "metric": None, "feeds": {}}))
    done = {}
    executor = RayExecutor("auto", timeout_s=5)
    results = executor.run(plan, lambda task, result: done.setdefault(task.key, result))
    executor.close()
    assert results["hang"]["status"] == "failed" and "timed out after 5 s" in results["hang"]["reason"]
    assert results["stuck"]["status"] == "failed" and "stopped at its deadline" in results["stuck"]["reason"]
    assert "WorkerCrashedError" in results["stuck"]["reason"], results["stuck"]["reason"]
    assert results["bad"]["status"] == "failed" and "broken factory" in results["bad"]["reason"]
    assert set(done) == {"hang", "stuck", "bad"}
