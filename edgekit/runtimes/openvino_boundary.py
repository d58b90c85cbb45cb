"""What OpenVINO's CPU plugin spends at each control-flow boundary (`edgekit inspect --runtime openvino`).

OpenVINO's performance counters report an `If` or `Loop` as one opaque node: the plugin compiles each
branch (and a loop body) as its own graph and does not expose its counters. So each level is profiled on
its own: the model runs with the feed, the values handed to every control-flow node are read back, and the
branch it takes (a loop body: its first iteration) is compiled and profiled alone with those values, the
same way the plugin sees it (Parameters in plain layout). Per boundary this gives

- `ms`: the node's time in its parent's counters (median over rounds);
- `body_ms`: the taken branch run alone (per iteration × iterations for a loop);
- `overhead_ms` = ms − body_ms: the hand-over — copying each input in and each output out, the layout
  conversions, and for a loop the per-iteration binding;
- `reorders_outside` / `reorders_inside`: the Reorder nodes the plugin inserted next to the node in the
  parent and at the branch's Parameters/Results (name, layouts, ms), read from the runtime model;
- `handed_in`: how many tensors, and MiB, the node hands to the branch it takes.

The profile's `boundary_ms` adds every boundary's overhead and reorders: what the control flow costs on top
of the compute, as far as the counters can tell (an inlined graph may also lose fusions across the cut).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.openvino import import_openvino
from edgekit.runtimes.openvino import INFERENCE_PRECISION

CONTROL_FLOW = ("If", "Loop", "TensorIterator")


def boundary_profile(path: Path, feed: dict[str, np.ndarray], rounds: int = 5, threads: int | None = None,
                     precision: str = "fp32") -> dict:
    """Profile `path` (IR or ONNX) on OpenVINO CPU with `feed`: wall time, op time by type per level, and
    one entry per control-flow node on the path the feed takes (depth-first, nested ones included)."""
    ov = import_openvino()
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY",
              "PERF_COUNT": True}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        model = core.read_model(str(path))
    except Exception as exc:
        raise EdgekitError(f"openvino: cannot read {Path(path).name}: {' '.join(str(exc).split())[:300]}") from exc
    by_port = {}
    for index, param in enumerate(model.get_parameters()):
        found = [feed[n] for n in param.output(0).get_names() | {param.get_friendly_name()} if n in feed]
        if not found:
            raise EdgekitError(f"openvino profile: no value for input {param.get_friendly_name()!r}")
        by_port[index] = found[0]
    profiler = _Profiler(core, config)
    top = profiler.level(model, by_port, "main", 0)
    profiler.measure(max(1, rounds))
    boundaries = [profiler.finish(entry) for entry in profiler.boundaries]
    # each boundary's numbers are its own: its body ran alone with its nested boundaries inside, so they add up
    handover = sum(b["overhead_ms"] for b in boundaries)
    reorders = sum(b["reorder_ms"] for b in boundaries)
    return {
        "runtime": "openvino", "openvino_version": ov.get_version().split("-")[0], "precision": precision,
        "rounds": rounds, "wall_ms": top.wall_ms, "ops_ms": top.ops_ms(), "boundaries": boundaries,
        "handover_ms": handover, "reorder_ms": reorders, "boundary_ms": handover + reorders,
        "boundary_share": (handover + reorders) / top.wall_ms if top.wall_ms else 0.0,
    }


class _Level:
    """One compiled graph (the model, or a branch run alone) and its timings."""

    def __init__(self, compiled, feed):
        self.request = compiled.create_infer_request()
        self.feed = feed
        self.request.infer(feed)  # warm-up: first-call allocations
        self.calls = 1
        self.graph = _runtime_graph(compiled)
        self.walls: list[float] = []
        self.counters: dict[str, tuple[str, list[float]]] = {}
        self._totals = self._read_totals()

    def _read_totals(self) -> dict[str, tuple[str, float]]:
        # The CPU plugin's counters are running means over every call since compile (checked: an If's
        # counter crept from 53 to 75 ms over four 256² calls after 64² ones), so a call's own time is the
        # difference of the running totals.
        return {info.node_name: (info.node_type, info.real_time.total_seconds() * 1e3 * self.calls)
                for info in self.request.get_profiling_info()}

    def run(self) -> None:
        self.request.infer(self.feed)
        self.calls += 1
        self.walls.append(self.request.latency)
        totals = self._read_totals()
        for name, (kind, total) in totals.items():
            before = self._totals.get(name, (kind, 0.0))[1]
            self.counters.setdefault(name, (kind, []))[1].append(max(0.0, total - before))
        self._totals = totals

    @property
    def wall_ms(self) -> float:
        return statistics.median(self.walls)

    def ms(self, name: str) -> float:
        return statistics.median(self.counters[name][1]) if name in self.counters else 0.0

    def ops_ms(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for name, (kind, _) in self.counters.items():
            total[kind] = total.get(kind, 0.0) + self.ms(name)
        return dict(sorted(total.items(), key=lambda kv: -kv[1]))


class _Profiler:
    """Compiles every level on the feed's path first, then times them round-robin (the machine's noise
    hits all levels alike; medians), then fills in the boundary entries."""

    def __init__(self, core, config: dict):
        self.core, self.config = core, config
        self.levels: list[_Level] = []
        self.boundaries: list[dict] = []

    def level(self, model, feed: dict[int, np.ndarray], where: str, depth: int) -> _Level:
        """Compile one graph; recurse into the branch each control-flow node takes."""
        try:
            compiled = self.core.compile_model(model, "CPU", self.config)
        except Exception as exc:
            raise EdgekitError(f"openvino: cannot compile {where}: {' '.join(str(exc).split())[:300]}") from exc
        level = _Level(compiled, feed)
        self.levels.append(level)
        nodes = [op for op in model.get_ordered_ops() if op.get_type_name() in CONTROL_FLOW]
        handed = _handed_values(self.core, model, nodes, feed, self.config) if nodes else {}
        for op in nodes:
            self._boundary(op, handed[op.get_friendly_name()], level, where, depth)
        return level

    def _boundary(self, op, values: list[np.ndarray], parent: _Level, where: str, depth: int) -> None:
        name, kind = op.get_friendly_name(), op.get_type_name()
        iterations = 1
        if kind == "If":
            index = 0 if bool(np.asarray(values[0]).reshape(-1)[0]) else 1
            branch = ("then", "else")[index]
            body_feed = {d.body_parameter_index: values[d.input_index] for d in _descriptions(op, index)}
        else:
            index, branch = 0, "body"
            body_feed, iterations = _first_iteration(self.core, self.config, op, values)
        entry = {"node": name, "op": kind, "depth": depth, "where": where, "branch": branch,
                 # OpenVINO's ONNX frontend names a node after its output: the tensor names identify it
                 "outputs": sorted(n for out in op.outputs() for n in out.get_names()),
                 "iterations": iterations,
                 "handed_in": _size([values[d.input_index] for d in _descriptions(op, index)]),
                 "_parent": parent}
        self.boundaries.append(entry)
        entry["_child"] = self.level(_body(op, index), body_feed, f"{where}/{name}.{branch}", depth + 1)

    def measure(self, rounds: int) -> None:
        for _ in range(rounds):
            for level in self.levels:
                level.run()

    @staticmethod
    def finish(entry: dict) -> dict:
        parent, child = entry.pop("_parent"), entry.pop("_child")
        entry["ms"] = parent.ms(entry["node"])
        entry["body_ms"] = child.wall_ms * entry["iterations"]
        entry["overhead_ms"] = entry["ms"] - entry["body_ms"]
        entry["body_ops_ms"] = child.ops_ms()
        entry["reorders_outside"] = _reorders_next_to(parent.graph, entry["node"], parent)
        entry["reorders_inside"] = _param_reorders(child.graph, child)
        entry["reorder_ms"] = sum(r["ms"] for r in entry["reorders_outside"] + entry["reorders_inside"])
        return entry


def _handed_values(core, model, nodes, feed, config) -> dict[str, list[np.ndarray]]:
    """The input values of each control-flow node in `nodes`, read back by running a copy of the model
    with those values as extra outputs (a separate compile, so the profiled graph keeps its own form)."""
    copy = model.clone()
    ops = {op.get_friendly_name(): op for op in copy.get_ordered_ops()}

    def source(value) -> tuple[str, int]:
        return value.get_node().get_friendly_name(), value.get_index()

    wanted = {(op.get_friendly_name(), i): source(ops[op.get_friendly_name()].input_value(i))
              for op in nodes for i in range(op.get_input_size())}
    have = {source(r.input_value(0)) for r in copy.get_results()}
    extra = {key for key in wanted.values() if key not in have}  # add_outputs skips values already out
    copy.add_outputs([ops[name].output(index) for name, index in sorted(extra)])
    at = {source(r.input_value(0)): k for k, r in enumerate(copy.get_results())}
    plain = {k: v for k, v in config.items() if k != "PERF_COUNT"}
    result = core.compile_model(copy, "CPU", plain).create_infer_request().infer(feed).to_tuple()
    values: dict[str, list[np.ndarray]] = {}
    for (name, _), key in wanted.items():
        values.setdefault(name, []).append(np.array(result[at[key]]))
    return values


MAX_COUNTED = 10_000  # iterations counted by stepping a loop body before giving up


def _first_iteration(core, config, op, values) -> tuple[dict[int, np.ndarray], int]:
    """A loop body's feed for iteration 0, and how many iterations the loop runs on `values`: counted by
    stepping the body alone (outputs fed back as the loop does), since a while-style loop's count is not an
    input."""
    descriptions = _descriptions(op, 0)
    sliced = [d for d in descriptions if type(d).__name__.startswith("Slice")]
    merged = [d for d in descriptions if type(d).__name__.startswith("Merged")]
    feed = {d.body_parameter_index: values[d.input_index] for d in descriptions}
    current, condition = op.get_special_body_ports() if op.get_type_name() == "Loop" else (-1, -1)

    def at(step: int, feed: dict) -> dict:
        for d in sliced:
            value = values[d.input_index]
            axis = d.axis if d.axis >= 0 else value.ndim + d.axis
            first = (step * d.part_size) if d.stride > 0 else value.shape[axis] - (step + 1) * d.part_size
            feed[d.body_parameter_index] = np.take(value, range(first, first + d.part_size), axis=axis)
        if current >= 0:
            param = _body(op, 0).get_parameters()[current]
            feed[current] = np.asarray(step, dtype=param.get_element_type().to_dtype()).reshape(
                [1] * param.get_partial_shape().rank.get_length())
        return feed

    feed = at(0, feed)
    limit = MAX_COUNTED
    for d in sliced:
        limit = min(limit, values[d.input_index].shape[d.axis] // d.part_size)
    if op.get_type_name() == "Loop":
        trip = int(np.asarray(values[0]).reshape(-1)[0])
        limit = min(limit, trip) if trip >= 0 else limit
        if not bool(np.asarray(values[1]).reshape(-1)[0]):
            return feed, 0
    plain = {k: v for k, v in config.items() if k != "PERF_COUNT"}
    request = core.compile_model(_body(op, 0), "CPU", plain).create_infer_request()
    step, state = 0, dict(feed)
    while step < limit:
        out = request.infer(state).to_tuple()
        step += 1
        if condition >= 0 and not bool(np.asarray(out[condition]).reshape(-1)[0]):
            break
        state = at(step, {**state, **{d.body_parameter_index: np.array(out[d.body_value_index]) for d in merged}})
    return feed, step


def _descriptions(op, index: int) -> list:
    """How the node's inputs map to the body's Parameters (an If has one list per branch)."""
    return op.get_input_descriptions(index) if op.get_type_name() == "If" else op.get_input_descriptions()


def _body(op, index: int):
    return op.get_function(index) if op.get_type_name() == "If" else op.get_function()


def _size(arrays) -> dict:
    return {"tensors": len(arrays), "mib": round(sum(a.nbytes for a in arrays) / 2**20, 3)}


def _runtime_graph(compiled) -> dict:
    """name → (layerType, output layout, producer names, consumer names) of the executed graph."""
    graph = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        graph[op.get_friendly_name()] = (
            rt["layerType"].astype(str), rt["outputLayouts"].astype(str) if "outputLayouts" in rt else "",
            [op.input_value(i).get_node().get_friendly_name() for i in range(op.get_input_size())],
            [t.get_node().get_friendly_name() for out in op.outputs() for t in out.get_target_inputs()])
    return graph


def _reorder(graph, name, level: _Level) -> dict:
    _, layout, producers, _ = graph[name]
    source = graph[producers[0]][1] if producers and producers[0] in graph else ""
    return {"name": name, "from": source, "to": layout, "ms": level.ms(name)}


def _reorders_next_to(graph, node: str, level: _Level) -> list[dict]:
    if node not in graph:
        return []
    _, _, producers, consumers = graph[node]
    return [_reorder(graph, n, level) for n in dict.fromkeys(producers + consumers)
            if n in graph and graph[n][0] == "Reorder"]


def _param_reorders(graph, level: _Level) -> list[dict]:
    """Reorders right after a branch's Parameters or right before its Results."""
    return [_reorder(graph, name, level) for name, (kind, _, producers, consumers) in graph.items()
            if kind == "Reorder" and (any(graph.get(p, ("",))[0] == "Input" for p in producers)
                                      or any(graph.get(c, ("",))[0] == "Output" for c in consumers))]
