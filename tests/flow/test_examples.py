"""examples/python at tiny size: a few seconds of training (a fixed number of steps, so deterministic) on
the generated data, then the exits really route (BranchyNet) and the step count changes the result
(DDPM-style denoiser)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from edgekit.flow.threads import one_thread

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_flow_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def single_thread():
    with one_thread():
        yield


def test_branchy_exits_route_after_training():
    branchy = _load("branchy")
    model, report = branchy.train(60.0, width=8, threshold=0.6, steps_limit=80, eval_count=256)
    histogram = report["exit_histogram"]
    assert sum(histogram) == 256 and sum(1 for h in histogram if h) >= 2, report
    assert len(report["accuracy_per_head"]) == 3 and len(report["accuracy_per_exit_taken"]) == 3
    assert report["accuracy_routed"] > 1 / branchy.CLASSES + 0.2, report  # well above chance (0.25)
    taken = [int(model(f["x"], f["threshold"])[1]) for f in model.validation_feeds()]
    assert taken == [0, 1, 2]


def test_denoiser_steps_after_training():
    denoiser = _load("denoiser")
    model, report = denoiser.train(60.0, width=8, steps_limit=60, eval_count=4)
    per_steps = report["psnr_per_steps_db"]
    assert set(per_steps) == {1, 2, 4, 8} and all(math.isfinite(v) for v in per_steps.values())
    assert min(per_steps.values()) > report["psnr_noisy_db"] + 3, report  # it denoises
    x, _, noise = model.example_inputs()
    outs = [model(x, torch.tensor(n), noise) for n in (1, 8)]
    assert not torch.allclose(outs[0], outs[1])
