"""Fixtures for the prune tests (not a conftest.py: that would shadow tests/conftest.py, which tests import
as `conftest`). A pruned tiny RBQE task (prune_model once per session) shared by the prune, apply and
export tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One intra-op thread here and in CLI subprocesses: on the shared 2-core machine two threads under
    load made RBQE's forward ~80× slower (1.8 s vs 0.02 s at width 8)."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def rbqe_task(tmp_path_factory):
    """(spec, out dir, report) of zoo:rbqe width 8 pruned to density 0.5 with SPLoRA, Taylor scores and a
    few seconds of recovery (so U and V are really trained, not at their ±1e-4 start)."""
    pytest.importorskip("torch_pruning")
    from edgekit.pruning import prune_model
    from edgekit.sources import resolve_source

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixture: runs before the per-test one_thread
    spec = "zoo:rbqe?width=8,weights=none,seed=3"
    out = tmp_path_factory.mktemp("prune") / "rbqe"
    report = prune_model(resolve_source(spec), out, density=0.5, importance="taylor", adapter="splora", rank=4,
                         steps=2, recover_minutes=0.05)
    torch.set_num_threads(threads)
    return spec, out, report
