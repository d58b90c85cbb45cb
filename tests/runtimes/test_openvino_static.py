"""OpenVINO compiled at the feed's shapes (`OpenVINORunner(static_shapes=True)`, `bench --static-shapes`):
the same numbers as PyTorch and as the dynamic model, one compiled model per shape signature."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.openvino

SPEC = "zoo:storm?nf=4,levels=2,max_steps=4,weights=none"  # the storm_bundle fixture's model


def _feed(frames: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"noisy_spec": rng.standard_normal((1, 2, 256, frames)).astype(np.float32),
            "num_steps": np.array(steps, np.int64),
            "noise": rng.standard_normal((5, 2, 2, 256, frames)).astype(np.float32)}


def test_static_shapes_match_pytorch_at_two_sizes_and_compile_once_each(storm_bundle):
    from edgekit.bundle import Bundle
    from edgekit.runtimes.openvino import runner_from_bundle
    from edgekit.sources import resolve_source

    bundle = Bundle.load(storm_bundle)
    static = runner_from_bundle(bundle, static_shapes=True)
    dynamic = runner_from_bundle(bundle)
    module = resolve_source(SPEC).module.eval()
    for frames, steps, seed in ((4, 3, 1), (8, 2, 2), (4, 1, 3)):  # fresh inputs; the third reuses 4 frames
        feed = _feed(frames, steps, seed)
        with torch.no_grad():
            want = module(*(torch.from_numpy(feed[k]) for k in ("noisy_spec", "num_steps", "noise"))).numpy()
        got = static.run(feed)["enhanced_spec"]
        assert got.shape == want.shape
        assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want), (frames, steps)
        np.testing.assert_allclose(got, dynamic.run(feed)["enhanced_spec"], rtol=1e-5, atol=1e-6)
    assert [dict(sig)["noisy_spec"][3] for sig in static._static] == [4, 8]  # one compile per signature


def test_a_shape_the_model_cannot_take_is_one_clear_error(storm_bundle):
    from edgekit.bundle import Bundle
    from edgekit.errors import EdgekitError
    from edgekit.runtimes.openvino import runner_from_bundle

    runner = runner_from_bundle(Bundle.load(storm_bundle), static_shapes=True)
    feed = _feed(4, 2, 0)
    feed["noisy_spec"] = feed["noisy_spec"][:, :, :100]  # 100 bins: the U-Net needs 256
    with pytest.raises(EdgekitError) as err:
        runner.run(feed)
    assert "noisy_spec" in str(err.value) and "\n" not in str(err.value)
