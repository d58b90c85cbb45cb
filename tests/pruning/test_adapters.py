"""SPLoRA layers: the adapted forward (x·Wᵀ + (x·Vᵀ)·Uᵀ) equals the fused plain layer, and torch-pruning
removes the rows/columns of W, U and V together."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgekit.pruning.adapters import (SpLoRA, SpLoRAConv1d, SpLoRAConv2d, SpLoRAConvTranspose2d,  # noqa: E402
                                      SpLoRALinear, adapter_for)

pytestmark = pytest.mark.prune

LAYERS = [
    (lambda: nn.Linear(12, 7), (5, 12), SpLoRALinear),
    (lambda: nn.Conv1d(6, 5, 5, stride=2, padding=2), (2, 6, 19), SpLoRAConv1d),
    (lambda: nn.Conv2d(6, 5, 3, padding=1), (2, 6, 11, 9), SpLoRAConv2d),
    (lambda: nn.Conv2d(6, 5, 3, stride=2, padding=2, dilation=2), (2, 6, 13, 10), SpLoRAConv2d),
    (lambda: nn.Conv2d(6, 5, 3, padding=2), (2, 6, 8, 8), SpLoRAConv2d),  # padding beyond 'same'
    (lambda: nn.ConvTranspose2d(6, 5, 2, stride=2), (2, 6, 7, 5), SpLoRAConvTranspose2d),
    (lambda: nn.ConvTranspose2d(6, 5, 3, stride=2, padding=1, output_padding=1), (2, 6, 4, 6), SpLoRAConvTranspose2d),
]


def _randomise(adapter: SpLoRA, seed: int) -> None:
    """A trained-looking adapter: U far from its ±1e-4 start, so U·V really changes the layer."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        adapter.lora_u.copy_(torch.randn(adapter.lora_u.shape, generator=g))
        adapter.lora_v.copy_(torch.randn(adapter.lora_v.shape, generator=g))


@pytest.mark.parametrize("make,shape,cls", LAYERS)
def test_fused_layer_equals_adapted_layer(make, shape, cls):
    torch.manual_seed(len(shape))
    layer = make()
    adapter = adapter_for(layer, 3)
    assert type(adapter) is cls and adapter.rank == 3
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.allclose(adapter(x), layer(x), rtol=0, atol=1e-3), "U starts near zero: the source layer"
        _randomise(adapter, 1)
        adapted = adapter(x)
        fused = adapter.fuse()
        assert type(fused) is type(layer)
        plain = fused(x)
        update = (adapted - layer(x)).abs().max()
    assert update > 1e-2, "the update must matter, or the comparison below proves nothing"
    rel = (plain - adapted).norm() / adapted.norm()
    assert rel < 1e-5, f"fused vs adapted rel L2 {rel:.2e}"


def test_only_adapter_and_bias_train():
    adapter = adapter_for(nn.Conv2d(4, 6, 3, padding=1), 2)
    assert not adapter.weight.requires_grad
    assert {n for n, p in adapter.named_parameters() if p.requires_grad} == {"bias", "lora_u", "lora_v"}
    assert adapter.learned_parameters() == 6 * 2 + 2 * 4 + 6


def test_fractional_rank_and_unfit_layers():
    assert adapter_for(nn.Linear(10, 20), 0.25).rank == 5
    assert adapter_for(nn.Conv2d(4, 4, 3, padding=1, groups=4), 2) is None, "depthwise stays plain"
    assert adapter_for(nn.Conv2d(4, 4, 2), 2) is None, "even kernel: no centre tap"
    assert adapter_for(nn.Conv2d(4, 4, 3, padding=0), 2) is None, "'valid' padding: 1×1 path off the grid"


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.c = nn.Conv2d(6, 5, 3, padding=1)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        y = self.c(torch.relu(self.b(torch.relu(self.a(x)))))
        return self.head(y.mean(dim=(2, 3)))


def test_pruning_shrinks_w_u_v_together_and_fuses_exactly():
    import torch_pruning as tp

    from edgekit.pruning.adapters import adapter_pruners
    from edgekit.pruning.wrap import adapter_masks, fuse_adapters, wrap_adapters

    torch.manual_seed(0)
    model = _Tiny()
    wrapped = wrap_adapters(model, 2)
    assert wrapped == ["a", "b", "c", "head"]
    for i, layer in enumerate(m for m in model.modules() if isinstance(m, SpLoRA)):
        layer.source_channels = (layer.weight.shape[layer.out_dim], layer.weight.shape[layer.in_dim])
        _randomise(layer, 10 + i)
    x = torch.randn(2, 3, 8, 8)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x, customized_pruners=adapter_pruners(),
                                                  verbose=False)
    for layer, idxs in ((model.a, [1, 4, 6]), (model.b, [0, 5])):
        graph.get_pruning_group(layer, graph.get_pruner_of_module(layer).prune_out_channels, idxs).prune()
    a, b, c = model.a, model.b, model.c
    assert a.weight.shape == (5, 3, 3, 3) and a.lora_u.shape == (5, 2) and a.lora_v.shape == (2, 3)
    assert a.bias.shape == (5,) and a.out_index.tolist() == [0, 2, 3, 5, 7]
    # b: ConvTranspose2d weight is (in, out, k, k): in follows a's pruning, out its own
    assert b.weight.shape == (5, 4, 2, 2) and b.lora_u.shape == (4, 2) and b.lora_v.shape == (2, 5)
    assert b.in_index.tolist() == [0, 2, 3, 5, 7] and b.out_index.tolist() == [1, 2, 3, 4]
    assert c.weight.shape == (5, 4, 3, 3) and c.lora_v.shape == (2, 4) and c.lora_u.shape == (5, 2)
    masks = adapter_masks(model)
    assert masks["b.out_mask"].tolist() == [False, True, True, True, True, False]
    assert masks["c.out_mask"].all() and masks["c.in_mask"].sum() == 4
    assert not a.weight.requires_grad and a.lora_u.requires_grad
    with torch.no_grad():
        adapted = model(x)
        fuse_adapters(model)
        fused = model(x)
    assert not any(isinstance(m, SpLoRA) for m in model.modules())
    assert model.b.weight.shape == (5, 4, 2, 2) and model.c.in_channels == 4
    assert (fused - adapted).norm() / adapted.norm() < 1e-5
