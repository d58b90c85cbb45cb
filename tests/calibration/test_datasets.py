"""Each calibration source, and each bad input naming the file and the input at fault."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from edgekit.calibration.datasets import load_calibration
from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec

IMAGE_INPUTS = [TensorSpec("image", (1, 3, "h", "w"), "float32"), TensorSpec("threshold", (), "float32")]
EXAMPLE = {"image": np.zeros((1, 3, 16, 20), np.float32), "threshold": np.array(0.5, np.float32)}


def _images(folder, count, mode="RGB"):
    from PIL import Image

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)).convert(mode).save(folder / f"{i:02d}.png")
    return folder


def test_image_folder_resized_scaled_and_subset_deterministic(tmp_path):
    folder = _images(tmp_path / "imgs", 6)
    feeds = load_calibration(str(folder), IMAGE_INPUTS, EXAMPLE, 3)
    assert len(feeds) == 3
    assert feeds[0]["image"].shape == (1, 3, 16, 20) and feeds[0]["image"].dtype == np.float32
    assert 0 <= feeds[0]["image"].min() and feeds[0]["image"].max() <= 1 and feeds[0]["image"].std() > 0.1
    assert float(feeds[0]["threshold"]) == 0.5, "scalar inputs keep their example values"
    again = load_calibration(str(folder), IMAGE_INPUTS, EXAMPLE, 3)
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(feeds, again))
    gray = load_calibration(str(folder), [TensorSpec("image", (1, 1, 8, 8), "float32")],
                            {"image": np.zeros((1, 1, 8, 8), np.float32)}, 2)
    assert gray[0]["image"].shape == (1, 1, 8, 8)


def test_audio_folder(tmp_path):
    folder = tmp_path / "wavs"
    folder.mkdir()
    for i in range(2):
        with wave.open(str(folder / f"{i}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
            w.writeframes((np.sin(np.arange(800) * 0.1 * (i + 1)) * 16000).astype("<i2").tobytes())
    inputs = [TensorSpec("audio", (1, 1000), "float32")]
    feeds = load_calibration(str(folder), inputs, {"audio": np.zeros((1, 1000), np.float32)}, 8)
    assert len(feeds) == 2 and feeds[1]["audio"].shape == (1, 1000)
    assert abs(feeds[0]["audio"][0, 10] - np.sin(1.0) * 16000 / 32768) < 1e-3 and feeds[0]["audio"][0, 900] == 0


def test_npz_and_python_sources(tmp_path):
    np.savez(tmp_path / "f.npz", **{f"{i}/image": np.full((1, 3, 16, 20), i, np.float32) for i in range(4)},
             **{f"{i}/threshold": np.array(0.1, np.float32) for i in range(4)})
    assert [float(f["image"].max()) for f in load_calibration(str(tmp_path / "f.npz"), IMAGE_INPUTS, EXAMPLE, 2)] == [0, 3]
    (tmp_path / "gen.py").write_text(
        "import numpy as np\n"
        "def feeds():\n"
        "    for i in range(100):\n"
        "        yield {'image': np.full((1, 3, 16, 20), i, np.float32)}\n")
    feeds = load_calibration(f"{tmp_path / 'gen.py'}:feeds", IMAGE_INPUTS, EXAMPLE, 5)
    assert len(feeds) == 5 and float(feeds[4]["image"].max()) == 4


def test_model_hook_is_the_default_and_missing_calibration_is_explained():
    class Model:
        def calibration_feeds(self, n):
            return [{"image": np.ones((1, 3, 16, 20), np.float32)}] * n

    assert len(load_calibration(None, IMAGE_INPUTS, EXAMPLE, 3, model=Model())) == 3
    with pytest.raises(EdgekitError, match="int8 needs calibration data: pass --calib"):
        load_calibration(None, IMAGE_INPUTS, EXAMPLE, 3, model=object())


def test_bad_calibration_inputs_name_the_file_and_input(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgekitError, match="empty: no images"):
        load_calibration(str(tmp_path / "empty"), IMAGE_INPUTS, EXAMPLE, 4)
    bad = _images(tmp_path / "bad", 1)
    (bad / "zz_broken.png").write_bytes(b"not a png")
    with pytest.raises(EdgekitError, match="zz_broken.png: unreadable image"):
        load_calibration(str(bad), IMAGE_INPUTS, EXAMPLE, 4)
    with pytest.raises(EdgekitError, match="does not exist"):
        load_calibration(str(tmp_path / "nope"), IMAGE_INPUTS, EXAMPLE, 4)
    np.savez(tmp_path / "shape.npz", image=np.zeros((1, 4, 16, 20), np.float32), threshold=np.array(0.1, np.float32))
    with pytest.raises(EdgekitError, match=r"image has shape \[1, 4, 16, 20\], the model expects"):
        load_calibration(str(tmp_path / "shape.npz"), IMAGE_INPUTS, EXAMPLE, 4)
    (tmp_path / "gen.py").write_text("import numpy as np\ndef feeds():\n    yield {'image': np.zeros((1, 3, 16, 20), np.int32)}\n")
    with pytest.raises(EdgekitError, match="input 'image' is int32, the model expects float32"):
        load_calibration(f"{tmp_path / 'gen.py'}:feeds", IMAGE_INPUTS, EXAMPLE, 4)
