"""The checks in a comparison that have no tolerance (DESIGN.md §7): non-finite values and integer outputs.

Any NaN/Inf in a reference or an output fails, naming the count and the first index; integer outputs
(exit_index, step counts) compare as integers on both sides, never by truncating a float side.
"""

from __future__ import annotations

import numpy as np


def nonfinite_problem(values: np.ndarray) -> str | None:
    """'N non-finite value(s) (a NaN, b Inf; first at index [i, j]: nan)' when `values` has NaN/Inf, else None."""
    values = np.asarray(values)
    if values.dtype.kind not in "fc":
        return None
    bad = np.flatnonzero(~np.isfinite(values))
    if not bad.size:
        return None
    first = bad[0]
    index = [int(i) for i in np.unravel_index(first, values.shape)] if values.ndim else []
    nans = int(np.isnan(values).sum())
    return (f"{bad.size} non-finite value(s) ({nans} NaN, {bad.size - nans} Inf; first at index {index}: "
            f"{values.ravel()[first]})")


def as_integers(role: str, values: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """`values` as int64, or (None, why) when a float side holds non-finite or fractional values."""
    values = np.asarray(values)
    if values.dtype.kind in "biu":
        return values.astype(np.int64), None
    floats = values.astype(np.float64)
    problem = nonfinite_problem(floats)
    if problem:
        return None, f"{role} has {problem}"
    fractional = np.flatnonzero(floats != np.round(floats))
    if fractional.size:
        first = fractional[0]
        return None, f"{role} has {fractional.size} non-integer value(s) (first: {floats.ravel()[first]})"
    return floats.astype(np.int64), None


def integer_mismatch(ref: np.ndarray, got: np.ndarray) -> tuple[str | None, float]:
    """(failure or None, max_abs_err contribution: inf for a non-integer side, else 0) for an integer output."""
    ref_int, why = as_integers("the reference", ref)
    if why is None:
        got_int, why = as_integers("the output", got)
    if why is not None:
        return f"integer output, but {why}", float("inf")
    diff = np.flatnonzero(ref_int != got_int)
    if not diff.size:
        return None, 0.0
    first = diff[0]
    return (f"{diff.size} integer value(s) differ (first: {np.asarray(got).ravel()[first]} vs reference "
            f"{np.asarray(ref).ravel()[first]})", 0.0)  # exit paths are not an element error: max_abs_err is floats
