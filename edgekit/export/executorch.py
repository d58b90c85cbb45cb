"""torch.export program → ExecuTorch (`model.pte`, XNNPACK-delegated), `torch.cond` kept, `while_loop` bounded.

ExecuTorch 1.5 runs `cond` and `scan` but cannot emit `while_loop` ("Unsupported control flow operator";
pytorch/executorch issue 8769), so a loop becomes a `scan` over the model's declared maximum step count whose
body is `cond(keep_going, step, identity)` (`executorch_loops`). Three more things done by hand here:

- XNNPACK inside branches and loop bodies (`executorch_delegate.DeepPartitioner`). The XNNPACK partitioner tags the top
  graph only, and torch.export passes the weights a branch uses in as operands, which XNNPACK cannot pack:
  a 3-conv branch ran on portable kernels at 7550 ms vs 24 ms delegated, zoo:toy (32², 8 steps) at 12.2 ms
  vs 0.21 ms. The weights are moved into the branch graphs as constants and each branch/body is partitioned
  on its own (ExecuTorch's `to_backend` already lowers tagged nodes in control-flow submodules).
- A copy of every `cond` output (`executorch_loops`): without it the memory planner let a later op reuse a
  branch output's buffer (zoo:toy's exit index came back as garbage).
- A check of the lowered program against the bounded one (`self_check`, in a subprocess: a bad delegate can
  crash the runtime); when it fails, the program is lowered again with branches on portable kernels and the
  manifest's `partitions.branches` says why.

Static shapes when the program loops: ExecuTorch's `scan` initialises its carry with `copy_`, which does not
resize, so a carried tensor with a dynamic dim fails at run time ("tensor_is_broadcastable_to", error 0x12)
even at the traced size. Loop-free programs keep their dynamic dims, bounded (memory is planned for the bound).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from edgekit.errors import ExportError, missing_extra

PTE_FILE = "model.pte"
METHOD = "forward"
# Loop-free programs keep dynamic dims up to this multiple of the traced size (ExecuTorch plans memory for
# the bound); --et-max-scale changes it.
DEFAULT_MAX_SCALE = 4


def pte_from_program(program_path: Path, root: Path, max_steps: int | None = None,
                     max_scale: int = DEFAULT_MAX_SCALE, log=lambda message: None) -> dict:
    """Lower the bundle's `model.pt2` into `root/model.pte`; return the manifest entry."""
    import torch

    start = time.perf_counter()
    with _quiet():  # importing executorch prints torchao's load failures; lowering logs a warning per branch
        try:
            from executorch.exir import to_edge
        except ImportError:
            raise missing_extra("executorch", "executorch", "executorch") from None
        from edgekit.export.executorch_delegate import DeepPartitioner
        from edgekit.export.executorch_loops import bound_loops

        bounded, shapes = bound_loops(torch.export.load(str(program_path)), max_steps, max_scale)
        lowered, counts = _lower(to_edge, bounded, DeepPartitioner())
        problem = self_check(lowered.buffer, bounded, root)
        if problem:
            lowered, counts = _lower(to_edge, bounded, DeepPartitioner(max_depth=0))
            counts["branches"] = f"portable: {problem}"[:300]
    if problem:  # after _quiet(), which holds stdout
        log(f"executorch: XNNPACK inside branches failed the check ({problem}); branches stay on portable kernels")
    (root / PTE_FILE).write_bytes(lowered.buffer)
    log(f"executorch: {counts['delegated']} XNNPACK partitions, {counts['portable']} ops on portable kernels "
        f"({time.perf_counter() - start:.1f} s)")
    rewrites = counts.pop("rewrites", None)
    return {"path": PTE_FILE, "format": "pte", "method": METHOD, "backend": "xnnpack",
            "executorch_version": metadata.version("executorch"),
            **({"max_steps": max_steps} if max_steps else {}), "shapes": shapes,
            **({"rewrites": rewrites} if rewrites else {}), "partitions": counts}


def declared_max_steps(module) -> int | None:
    """A model's loop bound: an int `max_steps` attribute, else the largest candidate of a `steps` knob."""
    value = getattr(module, "max_steps", None)
    if isinstance(value, int) and value > 0:
        return value
    knobs = getattr(module, "tuning_knobs", None)
    for knob in (knobs() if callable(knobs) else []):
        if knob.get("kind") == "steps" and knob.get("candidates"):
            return int(max(knob["candidates"]))
    return None


def _lower(to_edge, bounded, partitioner):
    from edgekit.export.executorch_delegate import delegated_ops, inline_branch_constants
    from edgekit.export.executorch_rewrites import global_means, precise_group_norms

    try:
        from executorch.exir.passes.constant_prop_pass import constant_prop_pass

        program, norms = precise_group_norms(copy.deepcopy(bounded))
        edge = to_edge(program)
        means = global_means(edge.exported_program().graph_module)  # before constant folding touches the pools
        constant_prop_pass(edge.exported_program())  # in place; the branches: fold_constants via the next call
        inline_branch_constants(edge.exported_program())
        edge = edge.to_backend(partitioner)
        counts = delegated_ops(edge.exported_program().graph_module)
        rewrites = {name: n for name, n in (("global_mean", means), ("group_norm_two_pass", norms)) if n}
        return edge.to_executorch(), {**counts, **({"rewrites": rewrites} if rewrites else {})}
    except Exception as exc:
        raise ExportError(f"executorch: lowering failed: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:400]}") from exc


# Runs in its own process: a delegate that reads the wrong tensor can crash the runtime, not only fail.
_CHECK = """
import sys, numpy as np, torch
from executorch.runtime import Runtime
data = np.load(sys.argv[2])
method = Runtime.get().load_program(sys.argv[1]).load_method(sys.argv[3])
for p in range(int(data["probes"])):
    args = [torch.from_numpy(data[f"{p}_in_{i}"]) for i in range(int(data["inputs"]))]
    for k, got in enumerate(method.execute(args)):
        got, want = np.asarray(got, np.float64), data[f"{p}_out_{k}"].astype(np.float64)
        if got.shape != want.shape or np.linalg.norm(got - want) > 1e-4 * max(np.linalg.norm(want), 1e-6):
            print(f"probe {p} output {k}: shape {list(got.shape)} vs {list(want.shape)}, or values differ"); sys.exit(1)
print("ok")
"""


def self_check(buffer: bytes, bounded, root: Path) -> str | None:
    """Run the lowered program against the bounded one on its example inputs, then with every float scalar
    input at -1e9 and at +1e9 (an exit threshold then takes the first exit, then every branch to the last
    one): why they disagree (or the runtime crashed), or None."""
    import numpy as np
    import torch

    args, _ = bounded.example_inputs
    probes = [args] + [tuple(torch.tensor(x, dtype=a.dtype) if a.dim() == 0 and a.is_floating_point() else a
                             for a in args) for x in (-1e9, 1e9)]
    reference = bounded.module()
    arrays = {"probes": np.array(len(probes)), "inputs": np.array(len(args))}
    for p, probe in enumerate(probes):
        arrays.update({f"{p}_in_{i}": a.numpy() for i, a in enumerate(probe)})
        outputs = torch.utils._pytree.tree_leaves(reference(*probe))
        arrays.update({f"{p}_out_{k}": o.detach().numpy() for k, o in enumerate(outputs)})
    with tempfile.TemporaryDirectory(prefix=".selfcheck-", dir=root) as tmp:
        (Path(tmp) / "model.pte").write_bytes(buffer)
        np.savez(Path(tmp) / "probes.npz", **arrays)
        proc = subprocess.run([sys.executable, "-c", _CHECK, str(Path(tmp) / "model.pte"),
                               str(Path(tmp) / "probes.npz"), METHOD], capture_output=True, text=True, timeout=600)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode == 0 and last == "ok":
        return None
    if proc.returncode < 0:
        return f"the runtime crashed (signal {-proc.returncode})"
    errors = [line for line in proc.stderr.splitlines() if "Error" in line or "failed" in line]
    return last or (errors[-1] if errors else f"exit {proc.returncode}")


@contextlib.contextmanager
def _quiet():
    """Keep ExecuTorch's prints and logging (Python and C++) off the user's terminal."""
    from edgekit.ui import discard_output

    logger = logging.getLogger("executorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with discard_output():
            yield
    finally:
        logger.setLevel(level)
