"""edgekit.tuning's search on planted models: fake runners whose exits, quality and cost are known, so the
right setting is known and must be found."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec
from edgekit.tuning.knobs import check_knob, settings_grid
from edgekit.tuning.search import choose, measure

SCORES = [0.2, 0.4, 0.6, 0.8]  # the planted per-sample exit score
INPUTS = [TensorSpec("x", (1,), "float32"), TensorSpec("threshold", (), "float32"),
          TensorSpec("num_steps", (), "int64", range=(1, 6))]


def _exit_model(feed):
    """Exit 0 when the sample's score reaches the threshold; exit 1 costs 4 ms more. The early exit is as
    good as the deep one only for samples scoring ≥ 0.5."""
    score = float(feed["x"][0])
    early = score >= float(feed["threshold"])
    quality = 1.0 if not early or score >= 0.5 else 0.0
    return {"y": np.array([quality], np.float32), "exit_index": np.array(0 if early else 1, np.int64)}


def _planted_clock(model, cost):
    """The planted model with a planted cost per call (ms): the search's choice is then known exactly."""
    return lambda feed: (lambda out: (out, cost(feed, out)))(model(feed))


def _threshold_knob():
    return check_knob({"input": "threshold", "kind": "exit_threshold", "path_output": "exit_index",
                       "candidates": [round(0.1 * i, 1) for i in range(11)], "costliest": 2.0},
                      INPUTS, ["y", "exit_index"], "planted")


def test_the_cheapest_threshold_within_budget_is_chosen():
    feeds = [{"x": np.array([s], np.float32), "threshold": np.array(0.0, np.float32),
              "num_steps": np.array(1, np.int64)} for s in SCORES]
    knob = _threshold_knob()
    clock = _planted_clock(_exit_model, lambda feed, out: 1.0 + 4.0 * int(out["exit_index"]))
    result = measure(_exit_model, feeds, [knob], INPUTS, lambda i, out, ref: float(out["y"][0]), timed_run=clock)
    assert result.reference.setting == {"threshold": 2.0} and result.reference.paths["exit_index"] == {"1": 4}
    chosen = choose(result, budget=0.01)
    # 0.5 and 0.6 let the two samples scoring ≥ 0.5 exit early and keep the others deep: the cheapest
    # without loss; of the two, the one with more margin (the higher threshold)
    assert chosen.setting == {"threshold": 0.6}
    assert chosen.paths["exit_index"] == {"0": 2, "1": 2} and chosen.drop == 0.0
    assert chosen.expected_latency_ms == pytest.approx(3.0) and result.reference.expected_latency_ms == 5.0
    # a generous budget buys the all-early threshold: half the samples lose everything
    loose = choose(result, budget=0.5)
    assert loose.setting == {"threshold": 0.2} and loose.metric == pytest.approx(0.5)
    # the oracle exits early exactly where that is free
    assert result.oracle.paths["exit_index"] == {"0": 2, "1": 2} and result.oracle.metric == 1.0


def _steps_model(feed):
    """Quality rises with N up to 3 steps, then stays; every step costs 2 ms."""
    return {"y": np.array([min(int(feed["num_steps"]), 3) / 3.0], np.float32)}


def test_the_fewest_steps_within_budget_are_chosen():
    knob = check_knob({"input": "num_steps", "kind": "steps", "candidates": [1, 2, 3, 4, 5, 6]}, INPUTS, ["y"],
                      "planted")
    feeds = [{"x": np.zeros(1, np.float32), "threshold": np.array(0.5, np.float32),
              "num_steps": np.array(6, np.int64)} for _ in range(2)]
    clock = _planted_clock(_steps_model, lambda feed, out: 2.0 * int(feed["num_steps"]))
    result = measure(_steps_model, feeds, [knob], INPUTS, lambda i, out, ref: float(out["y"][0]), timed_run=clock)
    assert result.reference.setting == {"num_steps": 6}
    assert choose(result, budget=0.0).setting == {"num_steps": 3}
    assert choose(result, budget=0.34).setting == {"num_steps": 2}
    assert choose(result, budget=0.0, floor=2.0) is None  # a floor no setting reaches


@pytest.mark.parametrize("knob, message", [
    ({"input": "nope", "kind": "steps", "candidates": [1]}, "knob 'nope' is not an input"),
    ({"input": "x", "kind": "steps", "candidates": [1]}, "must be a scalar input"),
    ({"input": "num_steps", "kind": "steps", "candidates": [0, 3]}, r"outside its range \[1, 6\]"),
    ({"input": "num_steps", "kind": "magic", "candidates": [1]}, "kind 'magic' is not one of"),
    ({"input": "threshold", "kind": "exit_threshold", "candidates": [0.5]}, "names its path_output"),
    ({"input": "threshold", "kind": "exit_threshold", "candidates": [], "path_output": "exit_index"},
     "non-empty list of numbers"),
])
def test_bad_knob_declarations_are_refused_by_name(knob, message):
    with pytest.raises(EdgekitError, match=message):
        check_knob(knob, INPUTS, ["y", "exit_index"], "planted")


def test_settings_are_the_product_of_the_knobs_and_bounded():
    steps = check_knob({"input": "num_steps", "kind": "steps", "candidates": [1, 2, 3]}, INPUTS, None, "p")
    grid = settings_grid([_threshold_knob(), steps])
    assert len(grid) == 12 * 3 and {"threshold": 2.0, "num_steps": 3} in grid
    many = check_knob({"input": "threshold", "kind": "exit_threshold", "path_output": "exit_index",
                       "candidates": [i / 1000 for i in range(600)]}, INPUTS, None, "p")
    with pytest.raises(EdgekitError, match="more than 512"):
        settings_grid([many])
