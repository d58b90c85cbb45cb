"""prune_model / apply_adapter on a tiny RBQE: the task file rebuilds the pruned model bit for bit, the
model's input/output channels stay, a wrong source or an untraceable model is refused, and the pruned
model still exports with its 4 nested If."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from edgekit.errors import EdgekitError  # noqa: E402
from prune_fixtures import one_thread, rbqe_task  # noqa: E402,F401

pytestmark = pytest.mark.prune


def _source(seed: int = 3):
    """The fixture's source module and its sha256, as resolve_source gives them (without the seconds it
    spends computing RBQE's validation feeds)."""
    from edgekit.sources.model import state_sha256
    from edgekit.zoo.rbqe import build_rbqe

    module = build_rbqe(width=8, weights="none", seed=seed)
    return module, state_sha256(module)


def _rebuild(spec, out):
    from edgekit.pruning import apply_adapter

    assert spec == "zoo:rbqe?width=8,weights=none,seed=3"
    source, sha = _source()
    module, block = apply_adapter(source, out / "adapter.safetensors", sha)
    assert module is source, "pruned in place: same object, same class, hooks kept"
    return module, block


def test_task_file_rebuilds_the_pruned_model_bit_for_bit(rbqe_task):
    spec, out, report = rbqe_task
    module, block = _rebuild(spec, out)
    program = torch.export.load(str(out / "model.pt2"))
    exported = program.state_dict
    state = module.state_dict()
    assert set(exported) <= set(state) and len(exported) > 50
    for name, tensor in exported.items():
        assert torch.equal(state[name], tensor), name
    x = torch.rand(1, 1, 96, 64, generator=torch.Generator().manual_seed(7))
    for threshold in (0.0, 2.0):  # first and last exit
        mine, theirs = module(x, torch.tensor(threshold)), program.module()(x, torch.tensor(threshold))
        assert int(mine[1]) == int(theirs[1]) == (0 if threshold == 0.0 else 4)
        # not bit-for-bit: the exported graph sums per-edge convs where eager concatenates (zoo.rbqe.Up)
        torch.testing.assert_close(mine[0], theirs[0], atol=1e-6, rtol=0)
    again, _ = _rebuild(spec, out)
    assert all(torch.equal(a, b) for a, b in zip(again.forward_all(x), module.forward_all(x)))
    assert block["params_after"] == report["params_after"] == sum(p.numel() for p in module.parameters())
    assert block["adapter_sha256"] == report["adapter_sha256"]
    assert block["method"] == "splora" and block["rank"] == 4 and block["importance"] == "taylor"


def test_pruned_model_keeps_its_io_channels_and_reaches_the_density(rbqe_task):
    spec, out, report = rbqe_task
    module, _ = _rebuild(spec, out)
    assert module.stem[0].in_channels == 1
    assert all(head[1].out_channels == 1 for head in module.exits)
    assert module.stem[0].out_channels < 8 and module.up["0_1"].up[0].out_channels == module.stem[0].out_channels
    assert not any(p.requires_grad for p in module.parameters()), "frozen like the source (fast export)"
    assert abs(report["params_after"] / report["params_before"] - 0.5) < 0.06
    assert report["macs_after"] < 0.6 * report["macs_before"]
    assert report["layers"]["stem.0"]["out"] == [8, module.stem[0].out_channels]
    assert report["recovery"]["ran"] and report["recovery"]["steps"] > 0
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == {k: v for k, v in report.items() if k not in ("model", "adapter")}


def test_task_file_holds_masks_and_low_rank_factors(rbqe_task):
    from edgekit.pruning.task_file import read_task_file

    _, out, report = rbqe_task
    learned, masks, meta = read_task_file(out / "adapter.safetensors")
    u, v = learned["down.1.0.lora_u"], learned["down.1.0.lora_v"]
    out_mask, in_mask = masks["down.1.0.out_mask"], masks["down.1.0.in_mask"]
    assert out_mask.shape == in_mask.shape == (8,) and out_mask.dtype == torch.bool
    assert u.shape == (int(out_mask.sum()), 4) and v.shape == (4, int(in_mask.sum()))
    assert u.abs().max() > 1e-3, "recovery moved U away from its ±1e-4 start"
    assert not any(k.endswith(".weight") for k in learned), "SPLoRA stores no weights, only U, V, biases"
    assert report["learned_parameters"] == sum(t.numel() for t in learned.values()) < report["params_after"]
    assert meta["source"]["sha256"] == report["source"]["sha256"]


def test_task_file_of_another_source_is_refused(rbqe_task):
    from edgekit.pruning import apply_adapter

    spec, out, _ = rbqe_task
    other, other_sha = _source(seed=4)
    with pytest.raises(EdgekitError) as info:
        apply_adapter(other, out / "adapter.safetensors", other_sha)
    message = str(info.value)
    assert other_sha in message and _source()[1] in message and "adapter.safetensors" in message


def test_not_a_task_file_is_refused(tmp_path):
    from edgekit.pruning import apply_adapter

    bad = tmp_path / "task.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(EdgekitError, match="task.safetensors"):
        apply_adapter(torch.nn.Linear(2, 2), bad, "0" * 64)


class _Branchy(torch.nn.Module):
    """Two heads picked by torch.cond, and no all-branches trace function."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.a, self.b = torch.nn.Conv2d(8, 1, 1), torch.nn.Conv2d(8, 1, 1)

    def forward(self, x):
        h = self.body(x)
        return torch.cond(h.mean() > 0, lambda h: self.a(h), lambda h: self.b(h), (h,))

    def example_inputs(self):
        return (torch.rand(1, 1, 16, 16),)


def test_branch_untraced_pruning_is_refused(tmp_path):
    from edgekit.pruning import prune_model
    from edgekit.sources.python import from_built

    source = from_built("branchy", "module", _Branchy(), [], {}, sha256="0" * 64)
    with pytest.raises(EdgekitError) as info:
        prune_model(source, tmp_path / "out", density=0.5, steps=1)
    assert "forward_all" in str(info.value) and "torch.cond" in str(info.value)
    assert not (tmp_path / "out").exists()


class _Both(_Branchy):
    def forward_all(self, x):
        h = self.body(x)
        return self.a(h), self.b(h)


def test_all_branches_hook_prunes_both_heads():
    from edgekit.pruning.importance import importance_named
    from edgekit.pruning.plan import plan_for
    from edgekit.pruning.prune import PruneSettings, prune_module

    torch.manual_seed(0)
    model = _Both()
    plan = plan_for(model, "both", model.example_inputs())
    prune_module(model, plan, PruneSettings(0.5, "magnitude", "finetune", steps=1), importance_named("magnitude"))
    assert model.body.out_channels < 8
    assert model.a.in_channels == model.b.in_channels == model.body.out_channels
    assert model.a.out_channels == model.b.out_channels == 1


class _ConvOut(torch.nn.Module):
    """A model whose forward returns a conv's result as is: no op after it for torch-pruning to see."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.head = torch.nn.Conv2d(16, 6, 3, padding=1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))

    def example_inputs(self):
        return (torch.rand(1, 3, 16, 16),)


def test_a_layer_returned_as_the_output_keeps_its_channels():
    from edgekit.pruning.importance import importance_named
    from edgekit.pruning.plan import plan_for
    from edgekit.pruning.prune import PruneSettings, prune_module

    torch.manual_seed(0)
    model = _ConvOut()
    x = torch.rand(2, 3, 16, 16)
    plan = plan_for(model, "conv-out", model.example_inputs())
    prune_module(model, plan, PruneSettings(0.5, "magnitude", "finetune", steps=1), importance_named("magnitude"))
    assert model.body.out_channels < 16, "the hidden layer is pruned"
    assert model.head.out_channels == 6 and model(x).shape == (2, 6, 16, 16), "the model's output is not"


@pytest.mark.onnxruntime
@pytest.mark.openvino
@pytest.mark.slow
def test_export_adapter_rebuilds_the_pruned_rbqe_with_its_four_if(rbqe_task, tmp_path):
    """`edgekit export SOURCE --adapter task.safetensors`: the pruned model, exits intact, validated on every
    exit against the pruned PyTorch model (rebuilt from the task file the bundle keeps)."""
    import numpy as np

    from conftest import run_cli
    from edgekit.bundle import Bundle
    from edgekit.runtimes import open_runner
    from edgekit.validation.testdata import read_testdata

    spec, out, report = rbqe_task
    result = run_cli("export", spec, "--adapter", out / "adapter.safetensors", "--target", "onnx",
                     "--target", "openvino", "--samples", "2", "--out", tmp_path / "bundle", "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["control_flow"]["If"] == 4 and manifest["control_flow"]["Loop"] == 0
    prune = manifest["pipeline"]["prune"]
    assert prune["params_after"] == report["params_after"] < prune["params_before"]
    assert prune["macs_after"] < prune["macs_before"] and prune["density"] == 0.5
    for runtime in ("onnxruntime", "openvino"):
        assert manifest["validation"][runtime]["status"] == "passed"
        assert manifest["validation"][runtime]["paths"]["exit_index"] == [0, 1, 2, 3, 4]
    bundle = Bundle.load(tmp_path / "bundle")
    with open_runner(bundle, "torch") as torch_runner, open_runner(bundle, "onnxruntime") as ort_runner:
        feed, reference = read_testdata(bundle.path)[0]
        assert np.allclose(torch_runner.run(feed)["enhanced"], reference["enhanced"], atol=1e-6)
        assert np.allclose(ort_runner.run(feed)["enhanced"], reference["enhanced"], atol=1e-4)


@pytest.mark.parametrize("allocation", ["uniform", "spatial"])
def test_allocation_spreads_the_same_density_by_resolution(allocation):
    """--allocate spatial: at the same parameter density, full-resolution groups keep fewer channels than
    the lower-resolution ones (and fewer MACs remain); uniform keeps the same share everywhere."""
    from edgekit.pruning.importance import importance_named
    from edgekit.pruning.plan import plan_for
    from edgekit.pruning.prune import PruneSettings, count_parameters, prune_module
    from edgekit.pruning.stats import count_macs
    from edgekit.zoo.rbqe import build_rbqe

    module = build_rbqe(width=16, weights="none", seed=1)
    plan = plan_for(module, "zoo:rbqe", module.example_inputs())
    before = count_parameters(module), count_macs(module, plan.trace, plan.trace_inputs)
    prune_module(module, plan, PruneSettings(0.5, method="finetune", steps=1, allocation=allocation),
                 importance_named("magnitude"))
    density = count_parameters(module) / before[0]
    macs = count_macs(module, plan.trace, plan.trace_inputs) / before[1]
    assert abs(density - 0.5) < 0.05
    rows = [module.stem[0].out_channels, module.down[0][4].out_channels, module.down[2][4].out_channels]
    if allocation == "uniform":
        assert rows[0] == rows[1] == rows[2]
        assert macs > 0.4
    else:
        assert rows[0] < rows[1] < rows[2] <= 16, rows
        assert macs < 0.4
    module.eval()
    with torch.no_grad():
        outputs = module.forward_all(torch.rand(1, 1, 64, 64))
    assert all(o.shape == (1, 1, 64, 64) for o in outputs)
