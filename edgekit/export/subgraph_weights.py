"""Weights inside the control flow that uses them: each top-level initializer that only `If` branches or
`Loop` bodies read is moved into the subgraph that reads it, and small ones read in several places are
copied into each.

Why: torch.onnx puts every initializer in the main graph and a `Loop` body reads them from the outer scope.
ONNX Runtime's layout optimizer does not treat such outer-scope weights as constants, so it leaves the
body's convolutions in plain NCHW while the same convolutions outside a loop run NCHWc-blocked, with
Conv+Add fusions. Measured on zoo:storm, 64 frames, N = 12 (benchmarks/storm_loop.py, ORT's profiler):
the body's Conv time was 257 ms against 164 ms unrolled; with the weights inside the body, 173 ms against
172 ms, i.e. the `Loop` costs what the unrolled graph costs. OpenVINO times the same either way.

A weight read at the top level stays there; so does a large one read by several subgraphs (copies would
grow the file) — ONNX forbids a subgraph name shadowing an outer one, so a copy gets a scoped name.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.export.surface import walk_graphs

COPY_LIMIT = 64 << 10  # bytes: initializers up to this size are copied into every subgraph that reads them


def localize_initializers(model) -> dict:
    """Rewrite `model` in place; return {"moved": n, "copied": n, "left": n} (left: still captured)."""
    import onnx

    top = model.graph
    initializers = {t.name: t for t in top.initializer}
    read_at_top = {x for node in top.node for x in node.input} | {v.name for v in [*top.output, *top.input]}
    readers: dict[str, list] = {}
    for ref, graph in walk_graphs(top):
        if not ref.path:
            continue
        own = {t.name for t in graph.initializer}
        reads = [*(x for node in graph.node for x in node.input), *(v.name for v in graph.output)]
        for name in dict.fromkeys(reads):
            if name in initializers and name not in own:
                readers.setdefault(name, []).append((ref, graph))
    counts = {"moved": 0, "copied": 0, "left": 0}
    moved = set()
    for name, graphs in readers.items():
        tensor = initializers[name]
        if len(graphs) == 1 and name not in read_at_top:
            graphs[0][1].initializer.append(tensor)
            moved.add(name)
            counts["moved"] += 1
        elif _nbytes(tensor) <= COPY_LIMIT:
            for index, (ref, graph) in enumerate(graphs):
                copy = onnx.TensorProto()
                copy.CopyFrom(tensor)
                copy.name = f"{name}__{index}_{'_'.join(n for pair in ref.path for n in pair)}"
                graph.initializer.append(copy)
                for node in graph.node:
                    node.input[:] = [copy.name if x == name else x for x in node.input]
                for value in graph.output:  # a branch may return the constant itself
                    value.name = copy.name if value.name == name else value.name
            counts["copied"] += 1
            if name not in read_at_top:
                moved.add(name)
        else:
            counts["left"] += 1
    kept = [t for t in top.initializer if t.name not in moved]
    del top.initializer[:]
    top.initializer.extend(kept)
    return counts


def localize_file(path: Path) -> dict | None:
    """localize_initializers on an ONNX file (kept as one file, or with its `.onnx.data` beside it); None
    when the graph has no subgraph reading a top-level initializer (the file is left untouched)."""
    from edgekit.export.controlflow import load_onnx, save_onnx_in_place

    path = Path(path)
    model = load_onnx(path)
    counts = localize_initializers(model)
    if not counts["moved"] and not counts["copied"]:
        return None
    save_onnx_in_place(model, path)
    return counts


def _nbytes(tensor) -> int:
    import numpy as np
    from onnx import helper

    count = int(np.prod(tensor.dims)) if tensor.dims else 1
    return count * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
