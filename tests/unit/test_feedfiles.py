"""Feed files in the layouts people have (issue #26): stacked .npz, K/NAME .npz, .npy, folders; every
error names the flag the user typed."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.calibration.datasets import load_calibration
from edgekit.errors import EdgekitError
from edgekit.feedfiles import load_feed_file
from edgekit.specs import TensorSpec
from edgekit.validation.compare import load_npz_feeds

INPUTS = [TensorSpec("x", (1, 3, "h", "w"), "float32"), TensorSpec("t", (), "float32", default=0.5),
          TensorSpec("n", (), "int64", default=4, range=(1, 8))]
EXAMPLE = {"x": np.zeros((1, 3, 8, 8), np.float32), "t": np.array(0.25, np.float32), "n": np.array(2, np.int64)}


def _stack(count):
    return np.arange(count, dtype=np.float32)[:, None, None, None, None] * np.ones((count, 1, 3, 8, 8), np.float32)


def test_npz_one_array_per_input_with_a_leading_sample_axis(tmp_path):
    np.savez(tmp_path / "s.npz", x=_stack(5), n=np.arange(1, 6, dtype=np.int64), t=np.array(0.1, np.float32))
    feeds = load_feed_file(tmp_path / "s.npz", INPUTS, "--tune-data")
    assert len(feeds) == 5
    assert [float(f["x"].max()) for f in feeds] == [0, 1, 2, 3, 4]
    assert [int(f["n"]) for f in feeds] == [1, 2, 3, 4, 5]
    assert all(f["x"].shape == (1, 3, 8, 8) and float(f["t"]) == pytest.approx(0.1) for f in feeds)
    # inputs left out take the caller's defaults, else the manifest default of a scalar
    np.savez(tmp_path / "x.npz", x=_stack(2))
    feeds = load_feed_file(tmp_path / "x.npz", INPUTS, "--data")
    assert float(feeds[0]["t"]) == 0.5 and int(feeds[0]["n"]) == 4 and feeds[0]["n"].dtype == np.int64
    feeds = load_feed_file(tmp_path / "x.npz", INPUTS, "--calib", defaults=EXAMPLE)
    assert float(feeds[1]["t"]) == 0.25 and int(feeds[1]["n"]) == 2


def test_indexed_npz_and_single_feed_still_work(tmp_path):
    one = {"x": np.ones((1, 3, 8, 8), np.float32), "t": np.array(0.3, np.float32), "n": np.array(3, np.int64)}
    np.savez(tmp_path / "one.npz", **one)
    assert len(load_npz_feeds(tmp_path / "one.npz", INPUTS)) == 1
    np.savez(tmp_path / "k.npz", **{f"{i}/{k}": v for i in range(3) for k, v in one.items()})
    assert len(load_feed_file(tmp_path / "k.npz", INPUTS, "--data")) == 3


def test_npy_feeds_the_only_tensor_input_and_folders_concatenate(tmp_path):
    np.save(tmp_path / "a.npy", _stack(3))
    feeds = load_feed_file(tmp_path / "a.npy", INPUTS, "--data")
    assert len(feeds) == 3 and int(feeds[2]["n"]) == 4
    np.save(tmp_path / "b.npy", np.full((1, 3, 8, 8), 7, np.float32))  # without the sample axis: one feed
    assert float(load_feed_file(tmp_path / "b.npy", INPUTS, "--data")[0]["x"].max()) == 7
    folder = tmp_path / "dir"
    folder.mkdir()
    np.save(folder / "1.npy", _stack(2))
    np.savez(folder / "2.npz", x=_stack(3))
    assert len(load_feed_file(folder, INPUTS, "--data")) == 5
    two = INPUTS + [TensorSpec("noise", (4, 2), "float32")]
    with pytest.raises(EdgekitError, match=r"--data .*a.npy: a .npy feeds a model with one tensor input; "
                                           r"this one has x, noise: use a .npz"):
        load_feed_file(tmp_path / "a.npy", two, "--data")


def test_errors_name_the_flag_the_file_the_input_and_the_sample(tmp_path):
    bad = _stack(4)
    bad[2] = np.nan  # allowed: values are not checked here
    np.savez(tmp_path / "n.npz", x=bad, n=np.array([1, 2, 99, 3], np.int64))
    with pytest.raises(EdgekitError, match=r"^--tune-data .*n.npz: sample 2: n = 99 is outside its valid range"):
        load_feed_file(tmp_path / "n.npz", INPUTS, "--tune-data")
    np.savez(tmp_path / "count.npz", x=_stack(4), n=np.ones(3, np.int64))
    with pytest.raises(EdgekitError, match="different sample counts on their first axis"):
        load_feed_file(tmp_path / "count.npz", INPUTS, "--data")
    np.savez(tmp_path / "batch.npz", x=np.zeros((16, 3, 8, 8), np.float32))
    with pytest.raises(EdgekitError, match=r"x has shape \[16, 3, 8, 8\].*new leading axis: shape \[16, 1, 3, 8, 8\]"):
        load_feed_file(tmp_path / "batch.npz", INPUTS, "--data")
    np.savez(tmp_path / "name.npz", y=_stack(2))
    with pytest.raises(EdgekitError, match=r"--data .*name.npz: y: the model has no input 'y' \(inputs: x, t, n\)"):
        load_feed_file(tmp_path / "name.npz", INPUTS, "--data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgekitError, match=r"^--data .*: no .npz or .npy files in the folder"):
        load_feed_file(tmp_path / "empty", INPUTS, "--data")
    (tmp_path / "n.txt").write_text("")
    with pytest.raises(EdgekitError, match=r"^--data .*: expected a .npz, a .npy or a folder"):
        load_feed_file(tmp_path / "n.txt", INPUTS, "--data")
    nolabel = [TensorSpec("x", (1, 3, 8, 8), "float32"), TensorSpec("m", (2,), "int64")]
    np.savez(tmp_path / "miss.npz", x=_stack(2))
    with pytest.raises(EdgekitError, match=r"--data .*miss.npz: sample 0: lacks input\(s\) m"):
        load_feed_file(tmp_path / "miss.npz", nolabel, "--data")


def test_calib_accepts_the_same_layouts_and_says_calib(tmp_path):
    np.savez(tmp_path / "c.npz", x=_stack(6))
    feeds = load_calibration(str(tmp_path / "c.npz"), INPUTS, EXAMPLE, 3)
    assert [float(f["x"].max()) for f in feeds] == [0, 2, 5]  # the evenly spread subset
    np.save(tmp_path / "c.npy", _stack(2))
    assert len(load_calibration(str(tmp_path / "c.npy"), INPUTS, EXAMPLE, 8)) == 2
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "0.npy", _stack(2))
    assert len(load_calibration(str(folder), INPUTS, EXAMPLE, 8)) == 2
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 1, 4, 8, 8), np.float32))
    with pytest.raises(EdgekitError, match=r"^--calib .*bad.npz: sample 0: x has shape \[1, 4, 8, 8\]"):
        load_calibration(str(tmp_path / "bad.npz"), INPUTS, EXAMPLE, 8)
