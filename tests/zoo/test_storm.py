"""zoo:storm: STFT front end, SI-SDR, the in-graph sampler (one ONNX Loop, parity with ONNX Runtime for
N ∈ {1, 2, max}), step-count validation and the shipped checkpoint (SI-SDR gain on a held-out mixture)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.errors import EdgekitError, SourceError
from edgekit.zoo import storm_audio as audio
from edgekit.zoo import storm_data
from edgekit.zoo.storm import build_storm, check_num_steps, make_noise, storm_feed
from edgekit.zoo.storm_metrics import si_sdr

TINY = {"nf": 4, "levels": 2, "max_steps": 4, "weights": "none"}


@pytest.fixture(scope="module")
def tiny():
    return build_storm(**TINY)


def test_zoo_entry_builds_tiny_from_strings():
    from edgekit.zoo import load_zoo

    entry = load_zoo().get("storm")
    model = entry.build(**{k: str(v) for k, v in entry.tiny.items()})
    assert (model.nf, model.levels, model.max_steps) == (4, 2, 4)


def test_source_hooks_describe_inputs_and_feeds():
    from edgekit.sources import resolve_source

    source = resolve_source("zoo:storm?nf=4,levels=2,max_steps=4,weights=none")
    shapes = {s.name: (s.shape, s.dtype) for s in source.inputs}
    assert shapes == {
        "noisy_spec": ((1, 2, 256, "2*frame_blocks"), "float32"),
        "num_steps": ((), "int64"),
        "noise": ((5, 2, 2, 256, "2*frame_blocks"), "float32"),
    }
    assert source.output_names == ["enhanced_spec"]
    assert [int(f["num_steps"]) for f in source.validation_feeds] == [1, 2, 4]


def test_stft_round_trip_is_exact():
    rng = np.random.default_rng(0)
    wave = torch.from_numpy(rng.uniform(-0.7, 0.7, 12345).astype(np.float32))
    spec, norm, frames = audio.spec_from_wave(wave, frame_multiple=8)
    assert spec.shape == (1, 2, 256, 104) and frames == audio.num_frames(12345) == 97
    assert norm == pytest.approx(float(wave.abs().max()))
    back = audio.wave_from_spec(spec, norm, wave.numel())
    assert float((back - wave).abs().max()) < 1e-5


def test_compression_matches_formula():
    x = torch.tensor([4.0 + 0.0j, 0.0 - 9.0j])
    c = audio.compress(x, beta=0.15)
    assert torch.allclose(c, torch.tensor([0.3 + 0.0j, 0.0 - 0.45j]), atol=1e-6)
    assert torch.allclose(audio.decompress(c, beta=0.15), x, atol=1e-5)


def test_si_sdr_hand_computed():
    r = np.array([1.0, -1.0, 1.0, -1.0])
    e = r + 0.5 * np.array([1.0, 1.0, -1.0, -1.0])  # α = 1, residual energy 1, target energy 4
    assert si_sdr(r, e) == pytest.approx(10 * np.log10(4.0), abs=1e-9)
    assert si_sdr(r, 3.0 * e) == pytest.approx(si_sdr(r, e), abs=1e-9)  # scale invariant
    s = np.sin(np.linspace(0, 50, 4000))
    assert si_sdr(s, s) > 150.0
    n = np.random.default_rng(1).standard_normal(4000)
    n -= n.mean()
    s0 = s - s.mean()
    n -= np.dot(n, s0) / np.dot(s0, s0) * s0  # orthogonal noise: SI-SDR = 10·log10(‖s‖²/‖0.1·n‖²)
    assert si_sdr(s, s + 0.1 * n) == pytest.approx(10 * np.log10(np.dot(s0, s0) / np.dot(0.1 * n, 0.1 * n)), abs=1e-6)


def test_sampler_runs_and_noise_makes_it_deterministic(tiny):
    spec, _, noise = tiny.example_inputs()
    one = tiny.enhance_spec(spec, 1, noise)
    full = tiny.enhance_spec(spec, tiny.max_steps, noise)
    assert one.shape == full.shape == spec.shape
    assert torch.isfinite(full).all() and not torch.allclose(one, full)
    assert torch.equal(full, tiny.enhance_spec(spec, tiny.max_steps, noise.clone()))
    assert not torch.allclose(full, tiny.enhance_spec(spec, tiny.max_steps, make_noise(4, spec.shape[-1], 9)))
    with torch.no_grad():  # the graph itself clamps N to [1, max_steps]
        assert torch.equal(tiny(spec, torch.tensor(0), noise), one)
        assert torch.equal(tiny(spec, torch.tensor(99), noise), full)
    assert tiny.predict(spec).shape == spec.shape


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_sampler_with_an_exact_score_returns_the_clean_spectrum_at_any_step_count(steps):
    """With the exact score of a point-mass clean spectrum x0, every predictor step's Tweedie estimate is
    x0, so the sampler must return x0 for any N, whatever noise it draws (the Euler–Maruyama predictor
    it replaced overshot at small N: g(t)²·dt ≫ std(t)²)."""
    from edgekit.zoo import storm_sde as sde

    model = build_storm(**TINY)
    spec, _, noise = model.example_inputs()
    x0 = 0.2 * torch.randn(spec.shape, generator=torch.Generator().manual_seed(3))

    def exact_score(x, y, dy, t):
        decay = torch.exp(-sde.GAMMA * t)[:, None, None, None]
        mean = decay * x0 + (1.0 - decay) * dy
        return -(x - mean) / sde.marginal_std(t)[:, None, None, None] ** 2

    model.score = exact_score
    out = model.enhance_spec(spec, steps, noise)
    assert torch.allclose(out, x0, atol=1e-4), float((out - x0).abs().max())


@pytest.mark.parametrize("bad", [0, 5, -1, 2.0, True, np.array(2, dtype=np.int32), torch.tensor([1, 2])])
def test_bad_num_steps_rejected(tiny, bad):
    with pytest.raises(EdgekitError, match="num_steps"):
        check_num_steps(bad, 4)
    with pytest.raises(EdgekitError, match="num_steps"):
        storm_feed(tiny, np.zeros((1, 2, 256, 8), np.float32), bad)


def test_bad_frames_rejected(tiny):
    with pytest.raises(EdgekitError, match="multiple of 2"):
        tiny.enhance_spec(torch.zeros(1, 2, 256, 7), 1)


def _count(graph, op):
    import onnx

    total = 0
    for node in graph.node:
        total += node.op_type == op
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                total += _count(attr.g, op)
            total += sum(_count(g, op) for g in attr.graphs)
    return total


def test_onnx_export_has_one_loop_and_matches_onnxruntime(tiny, tmp_path):
    import onnx
    import onnxruntime as ort

    path = tmp_path / "storm.onnx"
    dims = tiny.dynamic_shapes()
    # export → ExportedProgram → ONNX, as edgekit.export.onnx does: handing the module straight to
    # torch.onnx.export fails in torch 2.13 (its deferred runtime asserts put an aten.sym_stride, which
    # has no ONNX lowering, into the Loop body).
    program = torch.export.export(
        tiny, tiny.example_inputs(), strict=False,
        dynamic_shapes={"noisy_spec": dims["noisy_spec"], "num_steps": None, "noise": dims["noise"]},
    )
    torch.onnx.export(program, (), str(path), dynamo=True, opset_version=18,
                      input_names=list(tiny.input_names), output_names=list(tiny.output_names))
    model = onnx.load(str(path))
    assert _count(model.graph, "Loop") == 1
    assert [i.name for i in model.graph.input] == ["noisy_spec", "num_steps", "noise"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = 0.3 * torch.randn(1, 2, 256, 10, generator=torch.Generator().manual_seed(5))  # not the traced 6
    for n in (1, 2, tiny.max_steps):
        feed = storm_feed(tiny, spec.numpy(), n, seed=n)
        (got,) = session.run(None, feed)
        with torch.no_grad():
            want = tiny(*(torch.from_numpy(feed[k]) for k in tiny.input_names)).numpy()
        assert got.shape == (1, 2, 256, 10)
        assert np.abs(got - want).max() <= 1e-4, n


def test_checkpoint_config_mismatch_is_a_source_error():
    with pytest.raises(SourceError, match="trained with"):
        build_storm(nf=8, weights="default")


def test_checkpoint_improves_si_sdr_on_heldout_mixture():
    model = build_storm(max_steps=10)  # the shipped weights
    mixture = storm_data.heldout_mixtures(3)[1]  # pink noise, 5 dB; measured: +6.2 dB / +4.6 dB (N = 5)
    noisy = si_sdr(mixture.clean, mixture.noisy)
    predictive = si_sdr(mixture.clean, model.predict_wave(mixture.noisy).numpy())
    # N = 5: the Euler–Maruyama predictor used before 2026-12-06 collapsed here (−3.4 dB on average,
    # benchmarks/storm_quality.md); the OU-posterior predictor must hold up at small N.
    sampled = si_sdr(mixture.clean, model.enhance(mixture.noisy, num_steps=5, seed=0).numpy())
    assert predictive > noisy + 3.0
    assert sampled > noisy + 3.0


def test_calibration_feeds_are_few_short_sampler_runs():
    """Each feed is a whole sampler run (N network evaluations): at most 32, cycling N ∈ {5, 10, 20}
    (clipped to max_steps), so StoRM's int8 calibration stays near 30 s (benchmarks/README.md)."""
    from edgekit.zoo.storm_task import calibration_feeds

    full = build_storm(nf=4, levels=2, max_steps=50, weights="none")
    feeds = calibration_feeds(full, 64)
    assert len(feeds) == 32
    assert [int(f["num_steps"]) for f in feeds[:4]] == [5, 10, 20, 5]
    tiny = build_storm(**TINY)
    assert {int(f["num_steps"]) for f in calibration_feeds(tiny, 5)} == {4}
    assert len(calibration_feeds(tiny, 5)) == 5
