"""The measurement behind `edgekit tune`: every knob setting × every sample run through the bundle's runtime,
each call timed on that runtime, each output scored; then the cheapest setting within the quality budget.

Latency is measured, not estimated: each call is timed, and a setting's expected latency is the mean over
samples of the median time of that sample's path (its exit for thresholds, its step count for steps).
Settings that send a sample down the same path share its timings, so a threshold grid gets many draws
per (sample, exit) and the medians are steady on a noisy machine.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgekit.tuning.knobs import Knob, apply_setting, costliest_setting, settings_grid

Feed = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]
# (sample index, outputs, outputs of the costliest setting on that sample) -> score, higher is better
Scorer = Callable[[int, Outputs, Outputs], float]


@dataclass
class SettingResult:
    setting: dict
    metric: float  # mean score over the samples
    expected_latency_ms: float
    paths: dict = field(default_factory=dict)  # path output (or step knob) -> {value: samples}
    drop: float = 0.0  # metric of the costliest setting − this metric
    within_budget: bool = True

    def to_json(self) -> dict:
        return {"setting": self.setting, "metric": round(self.metric, 6), "drop": round(self.drop, 6),
                "expected_latency_ms": round(self.expected_latency_ms, 4), "paths": self.paths,
                "within_budget": self.within_budget}


@dataclass
class Measurement:
    """What running the grid produced: one row per setting, the reference row, and the per-sample oracle."""

    rows: list[SettingResult]
    reference: SettingResult
    oracle: SettingResult
    samples: int
    calls: int


def wall_clock(run: Callable[[Feed], Outputs]) -> Callable[[Feed], tuple[Outputs, float]]:
    """`run` timed on the host clock (ms): the runners' `run` returns when the outputs are ready."""

    def timed(feed: Feed) -> tuple[Outputs, float]:
        start = time.perf_counter_ns()
        outputs = run(feed)
        return outputs, (time.perf_counter_ns() - start) / 1e6

    return timed


def measure(run: Callable[[Feed], Outputs], feeds: list[Feed], knobs: list[Knob], inputs, scorer: Scorer,
            on_progress: Callable[[int, int], None] = lambda done, total: None,
            timed_run: Callable[[Feed], tuple[Outputs, float]] | None = None) -> Measurement:
    """Run every setting on every feed through `run`, timing each call (`timed_run`: outputs and ms of one
    call; default the wall clock around `run`)."""
    timed_run = timed_run or wall_clock(run)
    settings = settings_grid(knobs)
    costliest = costliest_setting(knobs)
    total = len(settings) * len(feeds)
    for setting in settings:  # warm-up, untimed: every branch and loop count runs once before timing
        run(apply_setting(feeds[0], setting, inputs))
    reference_outputs = [run(apply_setting(feed, costliest, inputs)) for feed in feeds]
    timings: dict[tuple, list[float]] = defaultdict(list)
    scores: dict[tuple, float] = {}
    per_setting: list[tuple[dict, list[tuple]]] = []
    done = 0
    for setting in settings:
        keys = []
        for i, feed in enumerate(feeds):
            outputs, elapsed = timed_run(apply_setting(feed, setting, inputs))
            key = (i, path_of(setting, knobs, outputs))
            timings[key].append(elapsed)
            if key not in scores:
                scores[key] = float(scorer(i, outputs, reference_outputs[i]))
            keys.append(key)
            done += 1
            on_progress(done, total)
        per_setting.append((setting, keys))
    median = {key: statistics.median(values) for key, values in timings.items()}
    rows = [_row(setting, keys, scores, median, knobs) for setting, keys in per_setting]
    reference = next(r for r in rows if r.setting == costliest)
    for row in rows:
        row.drop = reference.metric - row.metric
    return Measurement(rows, reference, _oracle(scores, median, knobs, len(feeds)), len(feeds), done)


def path_of(setting: dict, knobs: list[Knob], outputs: Outputs) -> tuple:
    """What decides a call's cost: the step counts it ran and the exits it took (not the threshold value)."""
    parts = []
    for knob in knobs:
        if knob.kind == "steps":
            parts.append((knob.input, setting[knob.input]))
        elif knob.path_output:
            parts.append((knob.path_output, int(np.asarray(outputs[knob.path_output]).reshape(-1)[0])))
    return tuple(parts)


def choose(measurement: Measurement, budget: float, floor: float | None = None) -> SettingResult | None:
    """The setting with the lowest expected latency whose drop from the costliest setting is within `budget`
    (and whose metric is at least `floor`); ties go to the better metric, then to the setting nearest the
    costliest one (the grid runs cheap to costly): of several thresholds that route the data alike, the
    highest, which leaves the most margin for inputs the data did not show. None when none qualifies."""
    for row in measurement.rows:
        row.within_budget = row.drop <= budget + 1e-12 and (floor is None or row.metric >= floor)
    candidates = [(i, r) for i, r in enumerate(measurement.rows) if r.within_budget]
    if not candidates:
        return None
    return min(candidates, key=lambda ir: (ir[1].expected_latency_ms, -ir[1].metric, -ir[0]))[1]


def _row(setting, keys, scores, median, knobs) -> SettingResult:
    paths: dict[str, Counter] = defaultdict(Counter)
    for _, path in keys:
        for name, value in path:
            paths[name][value] += 1
    return SettingResult(
        setting=dict(setting),
        metric=float(np.mean([scores[k] for k in keys])),
        expected_latency_ms=float(np.mean([median[k] for k in keys])),
        paths={name: {str(v): n for v, n in sorted(counter.items())} for name, counter in paths.items()},
    )


def _oracle(scores, median, knobs, samples: int) -> SettingResult:
    """Per sample, the best-scoring path any setting reached (ties: the faster one): the upper bound of a
    per-sample policy over the paths the knobs can reach."""
    best: dict[int, tuple] = {}
    for key, score in scores.items():
        i = key[0]
        if i not in best or (score, -median[key]) > (scores[best[i]], -median[best[i]]):
            best[i] = key
    keys = [best[i] for i in range(samples)]
    row = _row({}, keys, scores, median, knobs)
    row.setting = {"per_sample": True}
    return row
