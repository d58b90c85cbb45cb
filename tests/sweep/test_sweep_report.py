"""The Pareto front and the recommendation, on hand-made points (pure functions)."""

from __future__ import annotations

from edgekit.sweep.report import FAILED, OK, OVER, CellResult, SweepResult, mark_front_and_recommend, markdown, pareto_front


def test_pareto_front_keeps_only_undominated_points():
    # (latency ms, metric): b is slower and worse than a; d ties a on latency but is less accurate
    points = {"a": (1.0, 30.0), "b": (2.0, 29.0), "c": (3.0, 31.0), "d": (1.0, 29.5), "e": (0.5, 20.0)}
    front = dict(zip(points, pareto_front(list(points.values()))))
    assert front == {"a": True, "b": False, "c": True, "d": False, "e": True}


def test_pareto_front_keeps_equal_points_and_handles_one_point():
    assert pareto_front([(1.0, 2.0), (1.0, 2.0)]) == [True, True]
    assert pareto_front([(5.0, 1.0)]) == [True]
    assert pareto_front([]) == []


def _cell(name, device, p50, value, status=OK):
    return CellResult(name, {"device": device}, status, p50_ms=p50, value=value, baseline=30.0,
                      drop=None if value is None else 30.0 - value)


def test_recommendation_is_the_fastest_cell_within_budget_per_device():
    cells = [_cell("fast-but-bad", "cpu", 1.0, 25.0, OVER), _cell("ok-fast", "cpu", 2.0, 29.8),
             _cell("ok-slow", "cpu", 4.0, 30.0), _cell("broken", "cpu", None, None, FAILED),
             _cell("npu-a", "npu", 0.5, 29.9), _cell("npu-b", "npu", 0.4, 28.0, OVER)]
    mark_front_and_recommend(cells, budget=0.3)
    by = {c.id: c for c in cells}
    assert [c.id for c in cells if c.recommended] == ["ok-fast", "npu-a"]
    assert by["fast-but-bad"].pareto and by["ok-fast"].pareto and by["ok-slow"].pareto  # per-device fronts
    assert not by["broken"].pareto
    assert by["npu-a"].pareto and by["npu-b"].pareto
    result = SweepResult("s", "zoo:x", "local", "psnr", 0.3, cells, {"export": {"ran": 1, "cached": 0}}, "c", "d")
    assert result.recommended == {"cpu": "ok-fast", "npu": "npu-a"}
    text = markdown(result)
    assert "- recommended on `cpu`: `ok-fast`" in text
    assert "| `ok-fast` | ok |" in text
