"""A sweep on a local Ray instance (2 CPUs) declaring a fake device, `device:fake-npu`: benchmark tasks
must land where that resource is (and say so), a label no node declares must fail its cells alone, and
a cell failing inside its task must not stop the others."""

from __future__ import annotations

import pytest

from sweep_helpers import write_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.onnxruntime]


@pytest.fixture
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
