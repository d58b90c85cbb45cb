"""Errors that teach: known exporter and compiler failures mapped to one `hint:` line that says what to
change, with the user's source line when the traceback has one. The CLI's error boundary prints the hint
under the red error line; `export/onnx.py` attaches it where the exporter's full traceback is still at hand.

Each entry is a pattern over the error text (the message and, for exporter failures, the chained
traceback) and a function of the match that writes the hint. tests/unit/test_hints.py triggers each one.
"""

from __future__ import annotations

import linecache
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CONTROL_FLOW_DOC = "README.md#dynamic-control-flow"

# Optional modules → the extra that installs them (pyproject.toml [project.optional-dependencies]).
EXTRAS = {
    "onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt", "tensorrt_rtx": "tensorrt",
    "nncf": "quantize", "torch_pruning": "prune", "safetensors": "prune", "matplotlib": "bench",
    "skimage": "zoo", "PIL": "zoo", "onnxslim": "slim", "ray": "sweep", "polygraphy": "polygraphy",
}


@dataclass(frozen=True)
class Hint:
    name: str
    pattern: re.Pattern
    text: Callable[[re.Match], str]


def _op_on_target(target: str, op: str, node: str | None, fixes: str) -> str:
    where = f" (node {node})" if node else ""
    return f"{target} cannot run op {op}{where}: {fixes}"


HINTS: tuple[Hint, ...] = (
    Hint("data-dependent control flow", re.compile(
        r"GuardOnDataDependentSymNode|Could not guard on data-dependent expression|"
        r"Could not extract specialized integer from data-dependent expression"),
        lambda m: ("a Python `if`/`while` on a tensor's value is data-dependent control flow: write the "
                   "branch as torch.cond(pred, true_fn, false_fn, (x,)) and a loop as torch.while_loop "
                   f"(see {CONTROL_FLOW_DOC})")),
    Hint("aliasing in a branch", re.compile(r"Encountered aliasing during higher order op tracing|"
                                            r"[Ii]nput-to-output aliasing|might be aliasing the input"),
         lambda m: ("a torch.cond/while_loop branch returns one of its inputs unchanged (aliasing): return "
                    f"t.clone() instead of t (see {CONTROL_FLOW_DOC})")),
    Hint("torch.tensor in a branch", re.compile(r"Attempting to use FunctionalTensor on its own"),
         lambda m: ("a torch.cond/while_loop branch creates a tensor with torch.tensor(...): use "
                    f"torch.full((), value, dtype=...) instead (see {CONTROL_FLOW_DOC})")),
    Hint("op without an ONNX translation", re.compile(
        r"No ONNX function found for <OpOverload\(op='(?P<op>[\w.]+)'"),
        lambda m: _op_on_target("ONNX (torch.onnx)", m["op"], None,
                                "write it with standard torch ops, or pass torch.onnx a translation for it "
                                "(custom_translation_table) and export with edgekit's Python API")),
    Hint("op OpenVINO cannot convert", re.compile(r"No conversion rule found for operations?: (?P<op>[\w.:, ]+)"),
         lambda m: _op_on_target("OpenVINO", m["op"].strip(), None,
                                 "rewrite it with ops OpenVINO supports, add an OpenVINO extension for it, or "
                                 "leave out --target openvino (ONNX Runtime runs the model.onnx)")),
    Hint("op TensorRT cannot parse", re.compile(
        r"tensorrt: cannot parse .*?node '(?P<node>[^']*)' \((?P<op>[\w.]+)\): .*?"
        r"(?:Plugin not found|UNSUPPORTED_NODE|No importer registered)"),
        lambda m: _op_on_target("TensorRT", m["op"], m["node"],
                                "rewrite it with ops TensorRT supports, register a TensorRT plugin for it, or "
                                "leave out --target tensorrt (ONNX Runtime and OpenVINO run the model.onnx)")),
    Hint("dynamic dim fixed by the code", re.compile(r"Constraints violated \((?P<dim>.*?)\)!"),
         lambda m: (f"a dim declared dynamic in dynamic_shapes() ({m['dim']}) is fixed to one size by the model's "
                    "code: nn.LSTM/nn.GRU unroll over time under torch.export, and a shape read as a Python int "
                    "does the same; make that dim static (one bundle per size, e.g. --input NAME:SHAPE) or "
                    "compute with tensor ops (the full log names the line)")),
    Hint("missing extra", re.compile(r"pip install '?edgekit\[(?P<extra>[\w,]+)\]'?"),
         lambda m: f"install the extra: pip install 'edgekit[{m['extra']}]'"),
)


def hint_for(text: str) -> str | None:
    """The hint for the first known failure in `text`, or None."""
    for hint in HINTS:
        match = hint.pattern.search(text)
        if match:
            return hint.text(match)
    return None


def hint_for_exception(exc: BaseException) -> str | None:
    """The hint for `exc` read with its chained causes and tracebacks, plus the user's source line."""
    text = "".join(traceback.format_exception(exc))
    hint = hint_for(text)
    if hint is None:
        return None
    line = user_source_line(text)
    return f"{hint}; at {line}" if line else hint


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def user_source_line(text: str) -> str | None:
    """`file.py:12: if x.sum() > 0:` for the innermost frame of user code in a traceback text (not torch,
    not a library, not edgekit itself), or None."""
    edgekit_dir = str(Path(__file__).resolve().parent)
    found = None
    for match in _FRAME.finditer(text):
        path = match["file"]
        if path.startswith("<") or "site-packages" in path or "dist-packages" in path or "/lib/python" in path:
            continue
        if str(Path(path).resolve()).startswith(edgekit_dir):
            continue
        found = (path, int(match["line"]))
    if found is None:
        return None
    code = linecache.getline(found[0], found[1]).strip()
    return f"{found[0]}:{found[1]}" + (f": {code}" if code else "")


def extra_for_module(name: str | None) -> str | None:
    """The extra that installs top-level module `name` (from a ModuleNotFoundError), or None."""
    return EXTRAS.get((name or "").split(".")[0])
