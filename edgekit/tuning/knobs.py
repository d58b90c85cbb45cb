"""Run-time knobs: the scalar inputs of a model that trade quality for compute (DESIGN.md §6), declared by
the model's `tuning_knobs()` hook, checked here and written into the manifest's `knobs` at export.

A knob is a dict:
- `input`: the scalar graph input it sets (an exit threshold, a step count);
- `kind`: `exit_threshold` (a lower value stops at an earlier, cheaper exit; `path_output` names the
  integer output that says which exit ran) or `steps` (fewer steps are cheaper);
- `candidates`: the values `edgekit tune` tries (sorted, unique);
- `costliest`: the value that gives the model's most expensive, best-quality behaviour (the deepest exit,
  the most steps); the quality budget is measured from it. Default: the largest candidate.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec

KINDS = ("exit_threshold", "steps")
MAX_SETTINGS = 512  # the product of the knobs' candidates that `tune` is willing to run


@dataclass(frozen=True)
class Knob:
    input: str
    kind: str
    candidates: tuple
    costliest: float | int
    path_output: str | None = None

    def to_json(self) -> dict:
        out = {"input": self.input, "kind": self.kind, "candidates": list(self.candidates),
               "costliest": self.costliest}
        if self.path_output:
            out["path_output"] = self.path_output
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Knob":
        return cls(data["input"], data["kind"], tuple(data["candidates"]), data["costliest"],
                   data.get("path_output"))


def knobs_from_hook(module, inputs: list[TensorSpec], outputs: list[str] | None, where: str) -> list[Knob]:
    """The module's `tuning_knobs()` checked against its inputs/outputs ([] without the hook).
    Raises EdgekitError naming the knob at fault."""
    hook = getattr(module, "tuning_knobs", None)
    if not callable(hook):
        return []
    declared = hook() or []
    if isinstance(declared, dict):
        declared = [declared]
    return [check_knob(k, inputs, outputs, where) for k in declared]


def check_knob(data, inputs: list[TensorSpec], outputs: list[str] | None, where: str) -> Knob:
    if not isinstance(data, dict) or "input" not in data or "kind" not in data:
        raise EdgekitError(f"{where}: tuning_knobs(): each knob is a dict with 'input', 'kind' and 'candidates'")
    name, kind = data["input"], data["kind"]
    spec = next((s for s in inputs if s.name == name), None)
    if spec is None:
        raise EdgekitError(f"{where}: knob {name!r} is not an input ({', '.join(s.name for s in inputs)})")
    if spec.shape:
        raise EdgekitError(f"{where}: knob {name!r} must be a scalar input, it has shape {list(spec.shape)}")
    if kind not in KINDS:
        raise EdgekitError(f"{where}: knob {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    values = data.get("candidates")
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise EdgekitError(f"{where}: knob {name!r}: candidates must be a non-empty list of numbers")
    cast = float if spec.is_float else int
    candidates = tuple(sorted({cast(v) for v in values}))
    if spec.range is not None:
        low, high = spec.range
        outside = [v for v in candidates if not low <= v <= high]
        if outside:
            raise EdgekitError(f"{where}: knob {name!r}: candidates {outside} are outside its range [{low}, {high}]")
    costliest = cast(data.get("costliest", candidates[-1]))
    if costliest not in candidates:
        candidates = tuple(sorted({*candidates, costliest}))
    path_output = data.get("path_output")
    if kind == "exit_threshold":
        if not path_output:
            raise EdgekitError(f"{where}: knob {name!r}: an exit_threshold knob names its path_output (e.g. exit_index)")
        if outputs is not None and path_output not in outputs:
            raise EdgekitError(f"{where}: knob {name!r}: path_output {path_output!r} is not an output "
                               f"({', '.join(outputs)})")
    return Knob(name, kind, candidates, costliest, path_output)


def manifest_knobs(manifest, where: str) -> list[Knob]:
    """The knobs a bundle declares; EdgekitError when it has none (nothing to tune)."""
    knobs = [Knob.from_json(k) for k in (getattr(manifest, "knobs", None) or [])]
    if not knobs:
        raise EdgekitError(f"{where}: the model declares no run-time knobs (no `knobs` in manifest.json): give "
                           "it a tuning_knobs() hook naming its exit threshold or step count, then re-export")
    return knobs


def settings_grid(knobs: list[Knob]) -> list[dict]:
    """Every combination of the knobs' candidates, as {input: value} dicts."""
    count = int(np.prod([len(k.candidates) for k in knobs]))
    if count > MAX_SETTINGS:
        raise EdgekitError(f"{count} knob settings ({' × '.join(str(len(k.candidates)) for k in knobs)}) is more "
                           f"than {MAX_SETTINGS}: declare fewer candidates in tuning_knobs()")
    return [dict(zip((k.input for k in knobs), values)) for values in itertools.product(*(k.candidates for k in knobs))]


def costliest_setting(knobs: list[Knob]) -> dict:
    return {k.input: k.costliest for k in knobs}


def apply_setting(feed: dict, setting: dict, inputs: list[TensorSpec]) -> dict:
    """`feed` with the knob inputs set to `setting` (numpy scalars of each input's dtype)."""
    from edgekit.specs import np_dtype

    dtypes = {s.name: np_dtype(s.dtype) for s in inputs}
    return {**feed, **{name: np.asarray(value, dtype=dtypes[name]) for name, value in setting.items()}}


def tuned_defaults(manifest) -> dict:
    """{input: value} that `edgekit tune` chose for a bundle ({} when untuned): what `bench` and apps run
    with when no value is given."""
    tuning = getattr(manifest, "tuning", None) or {}
    return dict(tuning.get("chosen", {}).get("setting", {}))
