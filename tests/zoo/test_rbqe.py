"""zoo:rbqe: the nested-UNet early-exit model, its IQAM score, the data helpers and the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.errors import SourceError
from edgekit.zoo import load_zoo
from edgekit.zoo.rbqe import SHIPPED_WEIGHTS, build_rbqe, exit_macs
from edgekit.zoo.rbqe_data import psnr, rgb_to_ycbcr, rgb_to_ycbcr_torch, ycbcr_to_rgb, ycbcr_to_rgb_torch
from edgekit.zoo.rbqe_iqam import Iqam, tchebichef_basis

TINY = dict(load_zoo().get("rbqe").tiny)


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(2)
    return build_rbqe(**TINY)


@pytest.fixture(scope="module")
def feeds(tiny):
    return tiny.validation_feeds()


def count_if(graph) -> tuple[int, int]:
    """(number of If nodes, deepest If nesting) through every subgraph."""
    total, depth = 0, 0
    for node in graph.node:
        inner_total, inner_depth = 0, 0
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                t, d = count_if(sub)
                inner_total, inner_depth = inner_total + t, max(inner_depth, d)
        is_if = node.op_type == "If"
        total += inner_total + is_if
        depth = max(depth, inner_depth + is_if)
    return total, depth


# --- IQAM ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [4, 8])
def test_tchebichef_basis_is_orthonormal_polynomial(n):
    p = tchebichef_basis(n)
    np.testing.assert_allclose(p @ p.T, np.eye(n), atol=1e-12)
    x = np.arange(n, dtype=np.float64)
    for k in range(1, n):  # row k is orthogonal to every lower-degree monomial: degree-k Tchebichef
        lower = np.stack([x**j for j in range(k)])
        assert np.abs(lower @ p[k]).max() < 1e-8 * np.abs(lower).max()
    assert np.allclose(p[0], 1 / np.sqrt(n))


def test_iqam_filters_compute_tchebichef_moments():
    iqam = Iqam(8)
    p = torch.from_numpy(tchebichef_basis(8)).float()
    patch = torch.rand(8, 8)
    via_filters = iqam.filters[:64].view(64, 64) @ patch.reshape(64)
    np.testing.assert_allclose(via_filters.numpy(), (p @ patch @ p.T).reshape(64).numpy(), atol=1e-5)


def test_iqam_scores_heavier_jpeg_lower():
    pytest.importorskip("skimage")
    from edgekit.zoo.rbqe_data import QUALITY_FACTORS, compressed_pairs

    iqam = Iqam(8)
    scores = {qf: [float(iqam(torch.from_numpy(c)[None, None])) for _, c, _ in compressed_pairs(qf)]
              for qf in QUALITY_FACTORS}  # fmt: skip
    assert all(lo < hi for lo, hi in zip(scores[10], scores[50]))  # every held-out image
    means = [np.mean(scores[qf]) for qf in QUALITY_FACTORS]
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert all(0.0 <= s <= 1.0 for row in scores.values() for s in row)


def test_iqam_flat_image_is_blocky_and_batch_independent():
    iqam = Iqam(8)
    flat = torch.full((1, 1, 64, 64), 0.5)
    textured = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    both = iqam(torch.cat([flat, textured]))
    assert float(both[0]) == pytest.approx(0.0, abs=1e-6)  # DC-only patches: the paper's worst blockiness
    assert float(both[1]) > 0.5
    assert float(iqam(textured)) == pytest.approx(float(both[1]), abs=1e-6)


def test_robust_iqam_scores_a_quiet_patch_alike_whatever_sub_step_noise_it_carries():
    """The paper's IQAM jumps from 0 (flat: blocky) to 1 (clean) when noise below one 8-bit step is added,
    which is what int8 does to RBQE's outputs; the robust one (issue #19 §2) scores both as clean and
    textured content exactly as the paper does."""
    paper, robust = Iqam(8), Iqam(8, robust=True)
    flat = torch.full((1, 1, 64, 64), 0.5)
    noisy = [flat + (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(s)) - 0.5) / 255
             for s in range(4)]
    assert float(paper(flat)) == pytest.approx(0.0, abs=1e-6) and min(float(paper(x)) for x in noisy) > 0.99
    assert float(robust(flat)) == pytest.approx(1.0) and all(float(robust(x)) == pytest.approx(1.0) for x in noisy)
    louder = flat + (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(5)) - 0.5) * (8 / 255)
    textured = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(9))
    for image in (louder, textured):  # above the quiet level: the paper's score, unchanged
        assert float(robust(image)) == pytest.approx(float(paper(image)), abs=1e-6)


# --- data helpers -------------------------------------------------------------------------------
def test_online_jpeg_patches_pair_a_recompressed_crop_with_its_clean_target():
    pytest.importorskip("skimage")
    from edgekit.zoo.rbqe_train import PatchSampler

    sampler = PatchSampler("train", seed=0, online_jpeg=1.0)
    inputs, targets, qfs = sampler.batch(6, 64)
    assert inputs.shape == targets.shape == (6, 1, 64, 64) and inputs.dtype == torch.float32
    assert all(10 <= int(q) <= 50 for q in qfs)
    for a, b in zip(inputs, targets):
        assert 20.0 < psnr(a[0].numpy(), b[0].numpy()) < 60.0  # compressed, not identical, not garbage


def test_gate_loss_pushes_exits_before_the_oracle_below_the_threshold_and_the_rest_above():
    from edgekit.zoo.rbqe_train import TrainConfig, gate_loss, oracle_exits

    mse = torch.tensor([[1e-3, 1e-3, 1e-3], [4e-3, 2e-3, 1e-3]])  # PSNR 30/30/30 and 24/27/30 dB
    assert oracle_exits(mse, 0.05).tolist() == [0, 2]

    class Scores:  # IQAM stand-in: each "output" is already its score
        def quality(self, out):
            return out

    config = TrainConfig(gate_threshold=0.5, gate_margin=0.1)
    right = [torch.tensor([0.7, 0.3]), torch.tensor([0.7, 0.3]), torch.tensor([0.0, 0.0])]
    assert float(gate_loss(Scores(), right, mse, config)) == 0.0
    wrong = [torch.tensor([0.3, 0.7]), torch.tensor([0.7, 0.3]), torch.tensor([0.0, 0.0])]
    assert float(gate_loss(Scores(), wrong, mse, config)) == pytest.approx((0.3 + 0.3) / 2)


def test_ycbcr_round_trip():
    rgb = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    gray = rgb_to_ycbcr(np.full((1, 1, 3), 0.25, np.float32))[0, 0]
    np.testing.assert_allclose(gray, [0.25, 0.5, 0.5], atol=1e-6)
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    via_torch = rgb_to_ycbcr_torch(t)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(via_torch, rgb_to_ycbcr(rgb), atol=1e-5)
    np.testing.assert_allclose(ycbcr_to_rgb_torch(rgb_to_ycbcr_torch(t)).numpy(), t.numpy(), atol=1e-5)


# --- the model ----------------------------------------------------------------------------------
def test_full_width_size_and_cost_match_the_paper():
    model = build_rbqe(weights="none")
    params = sum(p.numel() for p in model.parameters())
    assert 0.28e6 < params < 0.32e6  # paper: ≈ 0.30 M
    gmac = [m * 16 / 1e9 for m in exit_macs(model, 128, 128)]  # convolutions scale with H·W: → 512×512
    paper = [10.2, 14.7, 18.7, 22.9, 27.6]
    assert all(a < b for a, b in zip(gmac, gmac[1:]))
    assert all(0.7 < ours / theirs < 1.1 for ours, theirs in zip(gmac, paper)), gmac


def test_validation_feeds_drive_every_exit_and_forward_matches_forward_all(tiny, feeds):
    exits = []
    with torch.no_grad():
        for feed in feeds:
            enhanced, exit_index = tiny(feed["image"], feed["threshold"])
            assert exit_index.dtype == torch.int64 and exit_index.shape == ()
            reference = tiny.forward_all(feed["image"])[int(exit_index)]
            torch.testing.assert_close(enhanced, reference, atol=1e-6, rtol=0)
            exits.append(int(exit_index))
    assert exits == [0, 1, 2, 3, 4, 0, 4]
    assert [float(f["threshold"]) for f in feeds][::len(feeds) - 1] == [0.0, 2.0]


@pytest.mark.parametrize("skips, width", [(1, 4), (3, 5)])
def test_up_node_exports_without_concatenating_feature_maps(skips, width):
    """The exported form of an Up node (per-edge gates and depthwise convs, a sum of 1×1 convs) computes what
    the concatenated form does, and the exported program concatenates no feature map (OpenVINO reorders
    a gated concatenation for the depthwise conv, a third of the node's time)."""
    from edgekit.zoo.rbqe import Up

    torch.manual_seed(width)
    up = Up(skips, width).eval()
    for module in up.modules():  # random gates and biases, not the init's zeros
        for param in module.parameters(recurse=False):
            param.data.normal_(0, 0.5)
    skips_in = [torch.rand(1, width, 16, 24) for _ in range(skips)]
    lower = torch.rand(1, width, 8, 12)
    with torch.no_grad():
        concatenated = up(skips_in, lower)
        per_edge = up._forward_per_edge([*skips_in, up.up(lower)])
    torch.testing.assert_close(per_edge, concatenated, atol=1e-5, rtol=1e-5)

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = up

        def forward(self, lower, *skips):
            return self.up(list(skips), lower)

    program = torch.export.export(Wrapper(), (lower, *skips_in))
    cats = [n for n in program.graph.nodes if n.target == torch.ops.aten.cat.default]
    assert cats, "the pooled gates are concatenated"
    for node in cats:
        shapes = [tuple(a.meta["val"].shape) for a in node.args[0]]
        assert all(shape[2:] == (1, 1) for shape in shapes), shapes
    with torch.no_grad():
        torch.testing.assert_close(program.module()(lower, *skips_in), concatenated, atol=1e-5, rtol=1e-5)


def export_and_compare(model, feeds, path):
    """Export with the dynamo exporter, check the nested Ifs, run `feeds` in ONNX Runtime vs PyTorch."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    program = torch.onnx.export(
        model, model.example_inputs(), dynamo=True,
        input_names=list(model.input_names), output_names=list(model.output_names), verbose=False,
    )  # fmt: skip
    program.save(str(path))
    total, depth = count_if(onnx.load(str(path)).graph)
    assert total >= 4 and depth >= 4  # four exit decisions, each inside the previous one's else-branch
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exits = []
    for feed in feeds:
        enhanced, exit_index = session.run(None, {k: v.numpy() for k, v in feed.items()})
        with torch.no_grad():
            ref_enhanced, ref_exit = model(feed["image"], feed["threshold"])
        assert int(exit_index) == int(ref_exit)
        assert np.abs(enhanced - ref_enhanced.numpy()).max() <= 1e-4
        exits.append(int(exit_index))
    return exits


@pytest.mark.slow
@pytest.mark.onnxruntime
def test_onnx_export_keeps_nested_ifs_and_matches_onnxruntime(tiny, feeds, tmp_path):
    # Static shapes keep this at ~25 s; with the dynamic H, W of `dynamic_shapes()` the export takes ~2×
    # longer (symbolic shapes through every nested branch). The 128×192 feeds need that dynamic export.
    same_shape = [f for f in feeds if f["image"].shape == feeds[0]["image"].shape]
    assert export_and_compare(tiny, same_shape, tmp_path / "rbqe.onnx") == [0, 1, 2, 3, 4]


# --- weights ------------------------------------------------------------------------------------
def test_weight_options_are_checked(tmp_path):
    with pytest.raises(SourceError, match="no shipped checkpoint"):
        build_rbqe(width=8)
    with pytest.raises(SourceError, match="not found"):
        build_rbqe(width=8, weights=str(tmp_path / "missing.pt"))
    torch.save(build_rbqe(width=4, weights="none").state_dict(), tmp_path / "w4.pt")
    with pytest.raises(SourceError, match="does not fit"):
        build_rbqe(width=8, weights=str(tmp_path / "w4.pt"))
    assert build_rbqe(width=4, weights=str(tmp_path / "w4.pt")).width == 4


def test_shipped_checkpoint_enhances_heldout_jpeg():
    pytest.importorskip("skimage")
    from edgekit.zoo.rbqe_data import compressed_pairs

    path = SHIPPED_WEIGHTS[("jpeg", 32, 5)]
    assert path.stat().st_size < 2e6
    model = build_rbqe()
    _, comp, clean = compressed_pairs(10, "heldout")[0]
    comp, clean = comp[:256, :256], clean[:256, :256]
    with torch.no_grad():
        outputs = model.forward_all(torch.from_numpy(comp)[None, None])
    gains = [psnr(o[0, 0].clamp(0, 1).numpy(), clean) - psnr(comp, clean) for o in outputs]
    assert min(gains) > 0.0, gains
