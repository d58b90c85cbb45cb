"""ExecuTorch edge-graph rewrites: zoo:rbqe's written-out global mean (Eca.pool) becomes one `mean` that
XNNPACK delegates, inside `cond` branches too, with the same numbers."""

from __future__ import annotations

import copy

import pytest
import torch

from edgekit.zoo.rbqe_blocks import Eca

pytestmark = [pytest.mark.executorch]


class PoolInBranch(torch.nn.Module):
    """An ECA gate (its pool written as sum/mean/÷W) before and inside a cond, and a plain sum/mean/÷ that
    is not a global mean (÷ a different tensor's width), which must stay."""

    def __init__(self):
        super().__init__()
        self.gate, self.inner = Eca(), Eca()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x, t):
        y = self.gate(torch.relu(self.conv(x)))

        def deeper(y):
            return self.inner(torch.relu(self.conv(y))) + 0.0

        def stop(y):
            return y.clone()

        z = torch.cond(t.sum() > 0, deeper, stop, (y,))
        other = x[:, :, :, :4]
        not_global = y.sum(3, keepdim=True).mean(2, keepdim=True) / torch.ones_like(other[:1, :1, :1, :]).sum(3, keepdim=True)
        return z + not_global


def _edge(dynamic: bool):
    from executorch.exir import to_edge  # the extra is installed wherever the executorch marker runs

    # dynamo caches the cond branches by code object: traced static first, a later dynamic export of the same
    # branches specialised W to the static run's 16 ("marked w as dynamic but your code specialized it")
    torch._dynamo.reset()
    model = PoolInBranch().eval().requires_grad_(False)
    example = (torch.randn(1, 4, 16, 16), torch.ones(1))
    # a dynamic width: x[:1, :1, :1, :] then exports a whole-width slice of W (0:INT64_MAX), as RBQE's does
    shapes = {"x": {3: torch.export.Dim("w", min=8, max=64)}, "t": None} if dynamic else None
    return model, to_edge(torch.export.export(model, example, dynamic_shapes=shapes, strict=False))


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic-width"])
def test_global_means_rewritten_in_branches_with_the_same_outputs(dynamic):
    from edgekit.export.executorch_delegate import delegated_ops
    from edgekit.export.executorch_rewrites import global_means

    model, edge = _edge(dynamic)
    program = edge.exported_program()
    x = torch.randn(1, 4, 16, 24 if dynamic else 16, generator=torch.Generator().manual_seed(3))
    before = {t: program.module()(x, torch.full((1,), t)) for t in (-1.0, 1.0)}
    assert global_means(program.graph_module) == 2  # the top-level gate and the one in the branch, not the decoy
    ops = delegated_ops(program.graph_module)["portable_ops"]
    assert ops["aten::mean.dim"] == 3 and "aten::full_like" in ops  # two new means + the decoy's, its ones kept
    for t, want in before.items():
        got = program.module()(x, torch.full((1,), t))
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got, model(x, torch.full((1,), t)), rtol=1e-5, atol=1e-6)


def test_rewritten_means_are_delegated_to_xnnpack_inside_the_branch():
    """Through the export's own lowering (`_lower`: rewrite, fold, branch constants, XNNPACK everywhere)."""
    from executorch.exir import to_edge

    from edgekit.export.executorch import _lower
    from edgekit.export.executorch_delegate import DeepPartitioner

    model = PoolInBranch().eval().requires_grad_(False)
    program = torch.export.export(model, (torch.randn(1, 4, 16, 16), torch.ones(1)), strict=False)
    _, counts = _lower(to_edge, program, DeepPartitioner())
    assert counts["rewrites"] == {"global_mean": 2}  # what pte_from_program records in the manifest
    ops = counts["portable_ops"]
    assert ops.get("aten::mean.dim", 0) == 1, ops  # only the decoy's mean (÷ another width) stays portable
    assert not [op for op in ops if "convolution" in op], ops


class NormsInBranch(torch.nn.Module):
    """4-D GroupNorms before and inside a cond, and a 3-D one (left to ExecuTorch's kernel)."""

    def __init__(self):
        super().__init__()
        self.outer, self.inner, self.flat = (torch.nn.GroupNorm(2, 8, eps=1e-6) for _ in range(3))
        for norm in (self.outer, self.inner, self.flat):
            torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
            torch.nn.init.uniform_(norm.bias, -0.5, 0.5)

    def forward(self, x, t):
        y = self.outer(x) * 3.0 + 2.0  # a mean well away from 0, as between a norm and the next conv
        z = torch.cond(t.sum() > 0, lambda y: self.inner(y) + 1.0, lambda y: y.clone(), (y,))
        return z, self.flat(x[:, :, :4].flatten(2))


def _run_pte(buffer: bytes, args, tmp_path) -> list:
    from executorch.runtime import Runtime

    path = tmp_path / "model.pte"
    path.write_bytes(buffer)
    return Runtime.get().load_program(str(path)).load_method("forward").execute(list(args))


def test_group_norms_decomposed_in_branches_match_float64_like_pytorch(tmp_path):
    """ExecuTorch's portable group norm sums a group in one float32 pass: 1.3–2.7e-6 rel L2 from float64 on
    zoo:storm's norms against PyTorch's 5–7e-8. The decomposed norms must be as close to float64 as PyTorch
    is, on both branches, and leave only the 3-D norm on the kernel."""
    from executorch.exir import to_edge

    from edgekit.export.executorch import _lower
    from edgekit.export.executorch_delegate import DeepPartitioner

    torch.manual_seed(0)
    model = NormsInBranch().eval().requires_grad_(False)
    program = torch.export.export(model, (torch.randn(1, 8, 128, 64), torch.ones(1)), strict=False)
    lowered, counts = _lower(to_edge, program, DeepPartitioner())
    assert counts.get("rewrites") == {"group_norm_two_pass": 2}
    assert counts["portable_ops"].get("aten::native_group_norm") == 1, counts["portable_ops"]  # the 3-D one
    x = 0.5 + 2.0 * torch.randn(1, 8, 128, 64, generator=torch.Generator().manual_seed(7))  # fresh, off-centre
    exact = copy.deepcopy(model).double()
    for t in (-1.0, 1.0):
        want, want_flat = exact(x.double(), torch.full((1,), t))
        eager, _ = model(x, torch.full((1,), t))
        got, got_flat = _run_pte(lowered.buffer, (x, torch.full((1,), t)), tmp_path)
        err, eager_err = (float(torch.linalg.norm(a.double() - want) / torch.linalg.norm(want)) for a in (got, eager))
        assert err <= max(4 * eager_err, 2e-7), (err, eager_err)
        torch.testing.assert_close(got_flat.double(), want_flat, rtol=1e-5, atol=1e-5)
