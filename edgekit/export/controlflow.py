"""ONNX graph facts that every stage needs: load with clear errors, op histograms and `If`/`Loop`
counts that recurse into subgraphs (branches and loop bodies), and the check that dynamic control
flow survived export (DESIGN.md §6)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

from edgekit.errors import EdgekitError, ExportError

CONTROL_FLOW_OPS = ("If", "Loop", "Scan")


def load_onnx(path: Path, load_external_data: bool = True):
    """Load and check an ONNX model; a missing, truncated or non-ONNX file is a one-line EdgekitError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"{path}: file does not exist")
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not (complete) ONNX
        raise EdgekitError(f"{path}: not a valid ONNX file ({type(exc).__name__}: {_first_line(exc)})") from exc
    if not model.graph.node and not model.graph.output:
        raise EdgekitError(f"{path}: not a valid ONNX file (empty graph)")
    try:
        # check the file by path so external data and >2 GiB models are handled by the checker
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise EdgekitError(f"{path}: invalid ONNX model: {_first_line(exc)}") from exc
    return model


def save_onnx_in_place(model, path: Path) -> None:
    """Rewrite `path` with `model` (loaded with its weights): a file that kept its weights in `NAME.data`
    keeps them there, rewritten; otherwise everything goes in the one file."""
    import onnx

    path = Path(path)
    data = path.with_name(path.name + ".data")
    external = data.exists()
    if external:
        data.unlink()
    onnx.save_model(model, str(path), save_as_external_data=external, location=data.name)


def iter_nodes(graph) -> Iterator:
    """Every node of `graph` and, depth first, of the subgraphs in its attributes."""
    import onnx

    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_nodes(sub)


def op_histogram(model) -> dict[str, int]:
    """Op type → count, through subgraphs, most frequent first."""
    counts = Counter(node.op_type for node in iter_nodes(model.graph))
    return dict(counts.most_common())


def control_flow_counts(model) -> dict[str, int]:
    hist = op_histogram(model)
    return {"If": hist.get("If", 0), "Loop": hist.get("Loop", 0)}


def max_if_depth(graph, depth: int = 0) -> int:
    """Deepest nesting of If nodes (a chain of early exits exports as nested If)."""
    import onnx

    best = depth
    for node in graph.node:
        inner = depth + (node.op_type == "If")
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs:
                best = max(best, max_if_depth(sub, inner))
        best = max(best, inner)
    return best


def check_control_flow_kept(expected: dict[str, int], model, where: str) -> None:
    """Raise ExportError if a model that has `torch.cond`/`while_loop` lost its If/Loop on export."""
    found = control_flow_counts(model)
    lost = [op for op, n in expected.items() if n and found.get(op, 0) == 0]
    if lost:
        raise ExportError(
            f"{where}: the model uses dynamic control flow but the exported graph has no "
            f"{'/'.join(lost)} node (unrolled or constant-folded away); refusing to write a static bundle"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
