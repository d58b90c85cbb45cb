"""Validation of a bundle whose graph keeps only some exits (`--keep-exits`, export/keep_exits.py).

The reference (PyTorch) still has every exit. A sample whose reference exit is kept must match it like in
any export; it is compared and stored as testdata. A sample whose reference exit was dropped is *rerouted*:
its outputs have no reference, so only its route is checked — the exits before the dropped one decided
"go on" in the reference and decide the same in the graph, so it must end at a kept exit deeper than the
reference's, or at the deepest kept exit when the reference went deeper than that.
"""

from __future__ import annotations

import numpy as np


def kept_exits_record(artifacts_or_manifest) -> dict | None:
    """The `kept_exits` record of a bundle's ONNX artifact (None when every exit is kept)."""
    artifacts = getattr(artifacts_or_manifest, "artifacts", artifacts_or_manifest) or {}
    entry = artifacts.get("onnx") or {}
    return entry.get("kept_exits") if isinstance(entry, dict) else None


def split_rerouted(samples: list[dict], references: list[dict], record: dict | None):
    """(samples, references) whose reference exit is kept, and [(sample, reference exit)] for the rest."""
    if not record or not record.get("dropped"):
        return samples, references, []
    name, kept = record["path_output"], set(record["kept"])
    same, refs, rerouted = [], [], []
    for feed, ref in zip(samples, references):
        exit_index = _index(ref[name])
        if exit_index in kept:
            same.append(feed)
            refs.append(ref)
        else:
            rerouted.append((feed, exit_index))
    return same, refs, rerouted


def rerouted_failures(run, rerouted: list, record: dict) -> list[str]:
    """One line per rerouted sample that did not end where the kept exits send it."""
    name, kept = record["path_output"], sorted(record["kept"])
    failures = []
    for i, (feed, reference) in enumerate(rerouted):
        got = _index(run(feed)[name])
        allowed = [k for k in kept if k >= min(reference, kept[-1])]
        if got not in allowed:
            failures.append(f"rerouted sample {i}: the reference left at {name} {reference} (dropped), the graph "
                            f"at {got}; expected {' or '.join(map(str, allowed))} (kept: {', '.join(map(str, kept))})")
    return failures


def _index(value) -> int:
    return int(np.asarray(value).reshape(-1)[0])
