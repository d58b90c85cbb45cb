"""The zoo:storm pruning recipe: both networks traced directly (the sampler's while_loop cannot be), GroupNorm
groups removed whole, the pruned sampler still runs, SPLoRA fuses exactly through it, and a pruned StoRM
exports through `edgekit export --adapter` with its Loop intact and validated."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from prune_fixtures import one_thread  # noqa: E402,F401

pytestmark = pytest.mark.prune

# nf=8: every GroupNorm has groups of 4 channels (storm_nets._groups), so pruning must drop whole groups
SPEC = "zoo:storm?nf=8,levels=2,max_steps=4,weights=none"


def _storm(seed: int = 0):
    from edgekit.zoo.storm import build_storm

    return build_storm(nf=8, levels=2, max_steps=4, weights="none", seed=seed)


def _sample(model, steps: int = 4):
    spec, _, noise = model.example_inputs()
    with torch.no_grad():
        return model(spec, torch.tensor(steps, dtype=torch.int64), noise)


def _norms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]


def test_recipe_prunes_both_networks_and_the_sampler_still_runs():
    from edgekit.pruning.importance import importance_named
    from edgekit.pruning.plan import plan_for
    from edgekit.pruning.prune import PruneSettings, count_parameters, prune_module

    model = _storm()
    plan = plan_for(model, SPEC, model.example_inputs())
    assert plan.recovery.startswith("zoo:storm recipe") and plan.loss is not None
    before = count_parameters(model)
    groups_before = sum(n.num_groups for n in _norms(model))
    result = prune_module(model, plan, PruneSettings(0.5, "taylor", "splora", rank=4, steps=2, recover_seconds=2.0),
                          importance_named("taylor"))
    assert abs(count_parameters(model) / before - 0.5) < 0.06
    assert result.recovery and all(r["steps"] > 0 for r in result.recovery)
    for net, inputs in ((model.predictive, 2), (model.score_net, 6)):
        assert net.stem.in_channels == inputs and net.head.out_channels == 2
        assert net.stem.out_channels < 8
    # whole groups went: every group still averages over 4 channels, and there are fewer groups
    assert all(n.num_channels == 4 * n.num_groups for n in _norms(model))
    assert sum(n.num_groups for n in _norms(model)) < groups_before
    y = torch.randn(1, 2, 256, 3 * model.frame_multiple)
    with torch.no_grad():
        assert model.predict(y).shape == y.shape
        assert model.score(y, y, y, torch.tensor([0.5])).shape == y.shape
    out = _sample(model)
    assert out.shape == (1, 2, 256, 3 * model.frame_multiple) and torch.isfinite(out).all()


def test_recovery_batches_are_reproducible():
    from edgekit.pruning.recipes import StormRecovery

    model = _storm()
    state = torch.random.get_rng_state()
    first = [StormRecovery(seed=5).loss(model).item() for _ in range(2)]
    assert torch.equal(torch.random.get_rng_state(), state), "recovery leaves the global generator alone"
    assert first == [StormRecovery(seed=5).loss(model).item() for _ in range(2)]
    assert StormRecovery(seed=6).loss(model).item() != first[0]


def test_fused_storm_samples_like_the_adapted_one():
    from edgekit.pruning.adapters import SpLoRA
    from edgekit.pruning.importance import importance_named
    from edgekit.pruning.plan import plan_for
    from edgekit.pruning.prune import (_out_channels, dependency_graph, fuse_adapters, prune_step, root_layers,
                                       wrap_adapters)

    model = _storm(seed=1)
    plan = plan_for(model, SPEC, model.example_inputs())
    wrap_adapters(model, 4)
    graph = dependency_graph(model, plan)
    prune_step(graph, {m: _out_channels(graph, m) for m in root_layers(graph)}, 0.7, importance_named("magnitude"))
    adapters = [m for m in model.modules() if isinstance(m, SpLoRA)]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for a in adapters:  # a trained-looking update, so U·V really changes every layer
            a.lora_u.copy_(0.05 * torch.randn(a.lora_u.shape, generator=g))
            a.lora_v.copy_(0.05 * torch.randn(a.lora_v.shape, generator=g))
    adapted = _sample(model)
    saved = [a.lora_u.detach().clone() for a in adapters]
    with torch.no_grad():
        for a in adapters:
            a.lora_u.zero_()
    assert (_sample(model) - adapted).abs().max() > 1e-3, "the update must matter for this test to mean anything"
    with torch.no_grad():
        for a, u in zip(adapters, saved):
            a.lora_u.copy_(u)
    fuse_adapters(model)
    assert not any(isinstance(m, SpLoRA) for m in model.modules())
    fused = _sample(model)
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused, adapted, atol=1e-5, rtol=1e-5)


@pytest.mark.onnxruntime
@pytest.mark.slow
def test_cli_prune_then_export_adapter_keeps_the_loop(tmp_path):
    """`edgekit prune` a small StoRM, then `edgekit export SOURCE --adapter`: the ONNX still has the sampler's
    one Loop and validates against the pruned PyTorch model."""
    import onnx

    from conftest import run_cli

    out = tmp_path / "pruned"
    result = run_cli("prune", SPEC, "--density", "0.5", "--steps", "2", "--recover-minutes", "0.02", "--rank", "4",
                     "--out", out, "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["params_after"] < 0.56 * report["params_before"]
    assert report["macs_after"] < 0.6 * report["macs_before"]
    assert report["recovery"]["ran"] and report["recovery"]["steps"] > 0
    assert report["recovery"]["recipe"].startswith("zoo:storm recipe")
    assert report["layers"]["predictive.head"]["out"] == [2, 2]
    assert report["layers"]["score_net.stem"]["in"] == [6, 6]

    bundle = tmp_path / "bundle"
    result = run_cli("export", SPEC, "--adapter", out / "adapter.safetensors", "--target", "onnx", "--samples", "2",
                     "--out", bundle, "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads(result.stdout)
    assert manifest["control_flow"] == {"If": 0, "Loop": 1}
    assert manifest["pipeline"]["prune"]["params_after"] == report["params_after"]
    block = manifest["validation"]["onnxruntime"]
    assert block["status"] == "passed" and {1, 4} <= set(block["paths"]["num_steps"])
    graph = onnx.load(str(bundle / "model.onnx")).graph
    assert [n.op_type for n in graph.node].count("Loop") == 1
    stem = next(i for i in graph.initializer if list(i.dims)[1:] == [2, 3, 3])  # predictive.stem: [out, 2, 3, 3]
    assert stem.dims[0] < 8, "the exported convs are the pruned ones"

    # the pruned .pt2 is a source too (its while_loop is re-traced: a loaded one lost its unbacked symbols)
    from_pt2 = tmp_path / "from-pt2"
    result = run_cli("export", out / "model.pt2", "--target", "onnx", "--samples", "2", "--out", from_pt2, "--json",
                     timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads(result.stdout)
    assert manifest["control_flow"] == {"If": 0, "Loop": 1}
    assert manifest["validation"]["onnxruntime"]["status"] == "passed"


class _SplitNorm(torch.nn.Module):
    """Two convs concatenated 5 + 7 into a GroupNorm of 3 groups of 4: its middle group takes channels from
    both, so those can never go; the outer groups go only whole."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(2, 5, 3, padding=1), torch.nn.Conv2d(2, 7, 3, padding=1)
        self.norm = torch.nn.GroupNorm(3, 12)
        self.head = torch.nn.Conv2d(12, 2, 1)

    def forward(self, x):
        return x + self.head(self.norm(torch.cat([self.a(x), self.b(x)], dim=1)))  # residual, as StoRM's D(y)

    def example_inputs(self):
        return (torch.rand(1, 2, 8, 8),)


def test_group_norm_loses_whole_groups_and_keeps_shared_ones():
    from edgekit.pruning.importance import importance_named
    from edgekit.pruning.plan import plan_for
    from edgekit.pruning.prune import PruneSettings, prune_module

    torch.manual_seed(0)
    model = _SplitNorm()
    plan = plan_for(model, "split", model.example_inputs())
    prune_module(model, plan, PruneSettings(0.3, "magnitude", "finetune", steps=1), importance_named("magnitude"))
    # a: channels 0-3 are group 0 (may go whole), 4 shares group 1 with b; b: 0-2 share it, 3-6 are group 2
    assert (model.a.out_channels, model.b.out_channels) == (1, 3)
    assert (model.norm.num_groups, model.norm.num_channels) == (1, 4)
    assert model(*model.example_inputs()).shape == (1, 2, 8, 8)
