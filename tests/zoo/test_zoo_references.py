"""The zoo models' outputs against stored references (tests/zoo/zoo_references.py): the shipped RBQE and
StoRM checkpoints, a tiny RBQE and zoo:toy, every RBQE exit, StoRM at N = 1, 2, 5 and both toy branches."""

from __future__ import annotations

import numpy as np
import pytest
from zoo_references import STORED, compute


@pytest.fixture(scope="module")
def outputs():
    stored = dict(np.load(STORED))
    return stored, compute(stored)


def test_every_stored_output_is_reproduced(outputs):
    stored, now = outputs
    assert sorted(now) == sorted(stored)
    for name, expected in stored.items():
        if name.endswith("/exit") or name.endswith("/cases"):
            np.testing.assert_array_equal(now[name], expected, err_msg=name)
        else:
            np.testing.assert_allclose(now[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_references_reach_every_exit_of_the_shipped_rbqe(outputs):
    stored, _ = outputs
    exits = sorted(int(v) for k, v in stored.items() if k.startswith("rbqe/case") and k.endswith("/exit"))
    assert exits == [0, 1, 2, 3, 4]
    assert {int(stored[f"toy/t{t}/n{n}/exit"]) for t, n in ((-1.0, 1), (2.0, 2))} == {0, 1}
