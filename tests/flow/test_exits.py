"""edgekit.flow.exit_chain in eager mode: the exit convention (score ≥ threshold, int64 index), planted
validation thresholds reaching every exit, the hooks, and the errors a user can fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekit.errors import SourceError
from edgekit.flow import entropy_confidence, exit_chain, max_softmax
from tiny_models import CLASSES, build_chain


def constant(value: float):
    return lambda out: torch.full((), value)


@pytest.fixture(scope="module")
def chain():
    return build_chain()


def test_planted_thresholds_hit_every_exit_in_order(chain):
    feeds = chain.validation_feeds()
    taken = [int(chain(f["x"], f["threshold"])[1]) for f in feeds]
    assert taken == [0, 1, 2]
    assert all(f["threshold"].dtype == torch.float32 and f["threshold"].dim() == 0 for f in feeds)


def test_exit_when_score_reaches_threshold():
    chain = build_chain(score=[constant(0.3), constant(0.7)])
    x = chain.example_inputs()[0]
    for threshold, expected in ((0.3, 0), (0.2, 0), (0.5, 1), (0.7, 1), (0.71, 2)):
        out, index = chain(x, torch.tensor(threshold))
        assert index.dtype == torch.int64 and index.dim() == 0
        assert int(index) == expected, threshold
        assert torch.equal(out, chain.run_all_exits(x)[expected])


def test_run_all_exits_and_scores(chain):
    x = chain.example_inputs()[0]
    outs = chain.run_all_exits(x)
    assert len(outs) == 3 and all(o.shape == (1, CLASSES) for o in outs)
    scores = chain.exit_scores(x)
    assert scores.shape == (2,) and torch.allclose(scores[0], max_softmax(outs[0]).double())


def test_returned_frozen_and_learned_score_registered():
    score = nn.Sequential(nn.Linear(CLASSES, 1), nn.Sigmoid(), nn.Flatten(0), _Min())
    chain = build_chain(score=score)
    assert not chain.training and not any(p.requires_grad for p in chain.parameters())
    assert any(k.startswith("score_modules.0.") for k in chain.state_dict())


class _Min(nn.Module):
    def forward(self, x):
        return x.min()


def test_knobs_reach_every_exit_and_costliest_the_last(chain):
    (knob,) = chain.tuning_knobs()
    assert knob["input"] == "threshold" and knob["kind"] == "exit_threshold" and knob["path_output"] == "exit_index"
    assert knob["costliest"] == max(knob["candidates"])
    for probe in chain.probe_inputs():
        assert int(chain(probe, torch.tensor(knob["costliest"]))[1]) == 2


def test_scores_in_range():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.isclose(max_softmax(logits), torch.tensor(1 / 3))
    assert entropy_confidence(logits).dim() == 0 and abs(float(entropy_confidence(logits))) < 1e-6
    assert float(entropy_confidence(logits[:1])) > 0.5


def test_non_scalar_score_is_refused():
    with pytest.raises(SourceError, match="0-d tensor"):
        build_chain(score=lambda logits: logits.softmax(-1).amax(-1))


def test_heads_that_disagree_are_refused():
    stages = [nn.Identity(), nn.Identity()]
    heads = [nn.Flatten(), nn.Identity()]
    with pytest.raises(SourceError, match="same shape and dtype"):
        exit_chain(stages, heads, constant(0.5), example_input=torch.randn(1, 2, 3))
    with pytest.raises(SourceError, match="one head per stage"):
        exit_chain(stages, heads[:1], constant(0.5), example_input=torch.randn(1, 2, 3))


def test_unreachable_exit_is_named():
    chain = build_chain(score=[constant(0.9), constant(0.1)])  # exit 1 never beats exit 0
    with pytest.raises(SourceError, match="reaches exit 1"):
        chain.validation_feeds()


def test_image_quality_score_drives_an_image_to_image_chain():
    """Any score works: zoo:rbqe's IQAM (no-reference quality, per image) reduced over the batch."""
    from edgekit.zoo.rbqe_iqam import Iqam

    iqam = Iqam(8)
    torch.manual_seed(0)
    stages = [nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)]
    heads = [nn.Conv2d(4, 1, 3, padding=1), nn.Conv2d(4, 1, 3, padding=1)]
    chain = exit_chain(stages, heads, lambda out: iqam(out).min(), example_input=torch.rand(1, 1, 32, 32))
    x = chain.example_inputs()[0]
    (score,) = chain.exit_scores(x).tolist()
    assert int(chain(x, torch.tensor(score - 1e-3))[1]) == 0
    assert int(chain(x, torch.tensor(score + 1e-3))[1]) == 1
    assert chain(x, torch.tensor(score + 1e-3))[0].shape == x.shape


def test_readme_flow_snippet_runs():
    """The README's `edgekit.flow` example runs as written."""
    import re

    from conftest import ROOT

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Your own model: edgekit.flow"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["exit_index"].dtype == torch.int64 and len(scope["logits_per_exit"]) == 3
    assert scope["out"].shape == (1, 4)


class _Skips(nn.Module):
    """A stage that keeps every earlier feature map (skip connections): tuple in, longer tuple out."""

    def __init__(self, first: bool):
        super().__init__()
        self.first, self.conv = first, nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, state):
        state = (state,) if self.first else state
        return (*state, torch.relu(self.conv(state[-1])) + state[0])


class _SumHead(nn.Module):
    def forward(self, state):
        return torch.stack(state).sum(0)


def test_tuple_features_and_a_features_score_export_and_match_eager_on_every_exit():
    torch.manual_seed(0)
    stages = [_Skips(first=k == 0) for k in range(3)]
    heads = [_SumHead() for _ in range(3)]
    chain = exit_chain(stages, heads, lambda state: state[-1].mean(),
                       example_input=torch.randn(1, 2, 8, 8), score_on="features")
    x = chain.example_inputs()[0]
    scores = chain.exit_scores(x)  # read from the stages' features, not the heads' outputs
    with torch.no_grad():
        features = stages[0](x)
        assert torch.allclose(scores[0], features[-1].mean().double())
    program = torch.export.export(chain, chain.example_inputs(), strict=False)
    assert sum(n.target is torch.ops.higher_order.cond for n in program.graph.nodes) == 1  # nested inside
    for feed in chain.validation_feeds():
        want, index = chain(feed["x"], feed["threshold"])
        got, got_index = program.module()(feed["x"], feed["threshold"])
        assert int(got_index) == int(index)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert sorted(int(chain(f["x"], f["threshold"])[1]) for f in chain.validation_feeds()) == [0, 1, 2]
    ran = []
    hooks = [h.register_forward_hook(lambda m, i, o, k=k: ran.append(k)) for k, h in enumerate(heads)]
    chain(x, torch.tensor(1e9))  # to the last exit: scored on features, heads 0 and 1 never run
    for hook in hooks:
        hook.remove()
    assert ran == [2]


def test_an_identity_head_scored_on_features_exports():
    chain = exit_chain([nn.Identity(), nn.Identity()], [nn.Identity(), nn.Identity()], lambda f: f.mean(),
                       example_input=torch.randn(1, 4), score_on="features",
                       probe_inputs=[torch.randn(1, 4) for _ in range(3)])
    program = torch.export.export(chain, chain.example_inputs(), strict=False)
    x = torch.randn(1, 4)
    for threshold in (-1e9, 1e9):
        got, index = program.module()(x, torch.tensor(threshold))
        torch.testing.assert_close(got, x)
        assert int(index) == (0 if threshold < 0 else 1)


def test_bad_score_on_is_refused():
    with pytest.raises(SourceError, match="score_on must be"):
        exit_chain([nn.Identity()], [nn.Identity()], max_softmax, example_input=torch.zeros(1, 3),
                   score_on="logits")
