"""edgekit.flow.sampler: N clamped to [1, max_steps], noise[i] feeding step i, determinism, the exported
while_loop matching eager for every N, the hooks, and the errors a user can fix."""

from __future__ import annotations

import pytest
import torch

from edgekit.errors import SourceError
from edgekit.flow import sampler
from tiny_models import build_sampler


def add_noise(x, i, n, z):
    return x + z


@pytest.fixture(scope="module")
def model():
    return build_sampler()


def test_step_i_reads_noise_i_and_n_is_clamped():
    s = sampler(add_noise, max_steps=4, noise_shape=(2,), example_input=torch.zeros(2))
    noise = torch.arange(4.0)[:, None].expand(4, 2) + 1  # row i holds i + 1
    for n, expected in ((1, 1), (2, 3), (4, 10), (0, 1), (9, 10), (-3, 1)):
        out = s(torch.zeros(2), torch.tensor(n), noise)
        assert torch.equal(out, torch.full((2,), float(expected))), n


def test_deterministic_for_a_given_noise(model):
    x, n, noise = model.example_inputs()
    assert torch.equal(model(x, n, noise), model(x, n, noise))
    assert not torch.equal(model(x, n, noise), model(x, n, model.make_noise(seed=5)))
    assert torch.equal(model.sample(x, 3, seed=1), model.sample(x, 3, seed=1))


def test_exported_loop_matches_eager_for_every_n(model):
    program = torch.export.export(model, model.example_inputs(), strict=False)
    loops = [n for n in program.graph.nodes if n.target is torch.ops.higher_order.while_loop]
    assert len(loops) == 1
    x, _, noise = model.example_inputs()
    for n in range(0, model.max_steps + 2):
        got = program.module()(x, torch.tensor(n), noise)
        torch.testing.assert_close(got, model(x, torch.tensor(n), noise), rtol=0, atol=1e-6)


def test_hooks(model):
    feeds = model.validation_feeds()
    assert [int(f["num_steps"]) for f in feeds] == [1, 2, 4]
    assert all(f["noise"].shape == (4, 1, 2, 8, 8) for f in feeds)
    assert model.input_ranges() == {"num_steps": (1, 4)}
    assert model.tuning_knobs() == [{"input": "num_steps", "kind": "steps", "candidates": [1, 2, 3, 4]}]
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert list(model.state_dict()) == ["step_module.conv.weight", "step_module.conv.bias"]


def test_missing_or_bad_max_steps():
    with pytest.raises(SourceError, match="max_steps is required"):
        sampler(add_noise, noise_shape=(2,), example_input=torch.zeros(2))
    with pytest.raises(SourceError, match="max_steps must be an int >= 1"):
        sampler(add_noise, max_steps=0, noise_shape=(2,), example_input=torch.zeros(2))
    with pytest.raises(SourceError, match="noise_shape is required"):
        sampler(add_noise, max_steps=2, example_input=torch.zeros(2))


def test_step_that_changes_shape_or_dtype():
    with pytest.raises(SourceError, match=r"keep x's shape and dtype.*\[2\].*\[4\]"):
        sampler(lambda x, i, n, z: torch.cat([x, z]), max_steps=2, noise_shape=(2,), example_input=torch.zeros(2))
    with pytest.raises(SourceError, match="keep x's shape and dtype"):
        sampler(lambda x, i, n, z: (x + z).double(), max_steps=2, noise_shape=(2,), example_input=torch.zeros(2))
    with pytest.raises(SourceError, match="return one tensor"):
        sampler(lambda x, i, n, z: (x, z), max_steps=2, noise_shape=(2,), example_input=torch.zeros(2))


def test_default_steps_thinned():
    s = sampler(add_noise, max_steps=50, noise_shape=(2,), example_input=torch.zeros(2))
    candidates = s.tuning_knobs()[0]["candidates"]
    assert candidates[0] == 1 and candidates[-1] == 50 and len(candidates) <= 16


def test_context_computed_once_reaches_every_step_in_eager_and_export():
    """Sampler.run(x, n, noise, *context, noise_offset): what zoo:storm does (its predictive pass D(y) feeds
    each step; noise[0] is its prior's, so step i reads noise[1 + i])."""

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sampler = sampler(lambda x, i, n, z, c=None: x + z if c is None else x + c + z, max_steps=3,
                                   noise_shape=(2,), example_input=torch.zeros(2))

        def forward(self, x, num_steps, noise):
            return self.sampler.run(x, num_steps, noise, 2.0 * noise[0], noise_offset=1)  # noise[0]: the context

    model = Wrapped().eval()
    noise = torch.arange(8.0).reshape(4, 2)
    program = torch.export.export(model, (torch.zeros(2), torch.tensor(2), noise), strict=False)
    for n in (1, 2, 3):
        want = n * 2.0 * noise[0] + noise[1:1 + n].sum(0)
        torch.testing.assert_close(model(torch.zeros(2), torch.tensor(n), noise), want, rtol=0, atol=0)
        torch.testing.assert_close(program.module()(torch.zeros(2), torch.tensor(n), noise), want, rtol=0, atol=0)
