import json

import numpy as np

from edgekit.validation.testdata import read_testdata, write_testdata


def test_testdata_round_trip_is_raw_little_endian(tmp_path):
    rng = np.random.default_rng(0)
    inputs = {"image": rng.standard_normal((1, 3, 4, 5)).astype(np.float32), "n": np.array(7, np.int64)}
    outputs = {"y": rng.standard_normal((2, 2)).astype(np.float32), "flag": np.array([True, False])}
    index = write_testdata(tmp_path, [(inputs, outputs)])
    assert index["byte_order"] == "little"
    meta = index["samples"][0]["inputs"]["image"]
    raw = (tmp_path / "testdata" / meta["file"]).read_bytes()
    # A C++ reader needs nothing but the index: the file is exactly the little-endian float32 data.
    assert raw == inputs["image"].astype("<f4").tobytes()
    assert json.loads((tmp_path / "testdata" / "index.json").read_text())["samples"][0]["inputs"]["n"]["shape"] == []
    (got_in, got_out), = read_testdata(tmp_path)
    for ref, got in ((inputs, got_in), (outputs, got_out)):
        for name in ref:
            assert got[name].dtype == ref[name].dtype and np.array_equal(got[name], ref[name])
