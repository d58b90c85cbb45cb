import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec, apply_feeds, parse_dynamic_spec, parse_feed, parse_input_spec


def test_parse_input_spec_static_named_and_scalar():
    assert parse_input_spec("image:1x3x64x64:float32") == TensorSpec("image", (1, 3, 64, 64), "float32")
    assert parse_input_spec("image:1x3xHxW") == TensorSpec("image", (1, 3, "H", "W"), "float32")
    assert parse_input_spec("steps::int64") == TensorSpec("steps", (), "int64")


@pytest.mark.parametrize("text", ["image", "image:1x3:complex7", "image:1x0x3", "1img:1x3", "image:1x-3"])
def test_parse_input_spec_rejects_bad_syntax_naming_it(text):
    with pytest.raises(EdgekitError, match="--input"):
        parse_input_spec(text)


def test_parse_dynamic_and_feed():
    assert parse_dynamic_spec("image:2,3") == ("image", [2, 3])
    with pytest.raises(EdgekitError, match="--dynamic"):
        parse_dynamic_spec("image:two")
    assert parse_feed("threshold=0.5") == ("threshold", 0.5)
    assert parse_feed("num_steps=5") == ("num_steps", 5)
    assert isinstance(parse_feed("num_steps=5")[1], int)
    with pytest.raises(EdgekitError, match="--feed"):
        parse_feed("threshold")


def test_apply_feeds_casts_to_input_dtype_and_rejects_unknown_names():
    specs = [TensorSpec("threshold", (), "float32"), TensorSpec("num_steps", (), "int64")]
    feed = {"threshold": np.array(0.5, np.float32), "num_steps": np.array(3, np.int64)}
    out = apply_feeds(feed, {"num_steps": 7, "threshold": 1}, specs)
    assert out["num_steps"].dtype == np.int64 and int(out["num_steps"]) == 7
    assert out["threshold"].dtype == np.float32 and out["threshold"].shape == ()
    with pytest.raises(EdgekitError, match="no input 'thresh'"):
        apply_feeds(feed, {"thresh": 1}, specs)


def test_parse_profile_spec_fixed_and_range():
    from edgekit.specs import parse_profile_spec

    assert parse_profile_spec("image:1x1x64x64") == ("image", ((1, 1, 64, 64),) * 3)
    assert parse_profile_spec("image:1x1x32x32,1x1x64x64,1x1x256x256")[1][2] == (1, 1, 256, 256)
    for bad in ("image", "image:1x1x64x64,1x1x64x64", "image:1xAx64", "image:0x1"):
        with pytest.raises(EdgekitError, match="--trt-shape"):
            parse_profile_spec(bad)
