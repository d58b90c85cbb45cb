"""The task graph: shared stages are one task, and what keys each stage (pure, no model needed)."""

from __future__ import annotations

from edgekit.sweep.config import load_config
from edgekit.sweep.plan import build_plan
from sweep_helpers import write_sweep

AXES = ('density = [1.0, 0.5]\nprecision = ["fp32", "int8"]\nruntime = ["onnxruntime", "openvino"]\n'
        'device = ["local", "orin-nx"]')


def _kinds(plan):
    kinds = {}
    for task in plan.tasks.values():
        kinds[task.kind] = kinds.get(task.kind, 0) + 1
    return kinds


def test_cells_share_their_upstream_stages(tmp_path):
    config = load_config(write_sweep(tmp_path, AXES))
    plan = build_plan(config, "sha", lambda label: None if label == "local" else f"no host with device:{label}")
    # 8 routable cells: one prune (d=0.5) shared by both precisions, one export per (density, precision)
    # shared by both runtimes, one baseline, one torch row per device, a measure per cell
    assert _kinds(plan) == {"prune": 1, "export": 4, "baseline": 1, "torch": 1, "measure": 8}
    assert sum(c.task is None for c in plan.cells) == 8
    assert all("no host with device:orin-nx" in c.reason for c in plan.cells if c.task is None)
    pruned = [t for t in plan.tasks.values() if t.kind == "export" and t.payload["prune"]]
    assert len(pruned) == 2 and len({t.deps for t in pruned}) == 1
    assert all(t.device == "local" for t in plan.tasks.values() if t.kind in ("torch", "measure"))
    assert not any(t.device for t in plan.tasks.values() if t.kind in ("prune", "export", "baseline"))
    order = list(plan.tasks)
    assert all(order.index(d) < order.index(k) for k, t in plan.tasks.items() for d in t.deps)


def test_keys_follow_what_each_stage_depends_on(tmp_path):
    config = load_config(write_sweep(tmp_path, AXES))

    def keys(source_sha="sha", metric_sha="m1"):
        plan = build_plan(config, source_sha, lambda label: None, metric_sha)
        return {kind: sorted(t.key for t in plan.tasks.values() if t.kind == kind)
                for kind in ("prune", "export", "baseline", "measure")}

    first = keys()
    assert keys() == first  # deterministic
    other_metric = keys(metric_sha="m2")  # the evaluation data changed: rescore, keep the exports
    assert other_metric["export"] == first["export"] and other_metric["prune"] == first["prune"]
    assert other_metric["baseline"] != first["baseline"] and other_metric["measure"] != first["measure"]
    other_weights = keys(source_sha="sha2")  # new weights: everything is new
    assert all(set(other_weights[k]).isdisjoint(first[k]) for k in first)


def test_no_verify_reaches_every_stage_but_not_the_cache_keys(tmp_path):
    from edgekit.sweep.report import SweepResult

    config = load_config(write_sweep(tmp_path, AXES))
    checked = build_plan(config, "sha", lambda label: None)
    config.verify = False  # `edgekit sweep --no-verify`
    unchecked = build_plan(config, "sha", lambda label: None)
    assert list(checked.tasks) == list(unchecked.tasks)  # the same stages: one cache serves both runs
    assert all(t.payload["verify"] is False for t in unchecked.tasks.values())
    assert all(t.payload["verify"] is True for t in checked.tasks.values())
    result = SweepResult("s", "zoo:toy", "local", None, None, [], {}, "c", "today", verified=False)
    assert result.to_json()["verified"] is False
    assert "verified" not in SweepResult("s", "zoo:toy", "local", None, None, [], {}, "c", "today").to_json()
