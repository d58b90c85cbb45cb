import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec
from edgekit.validation.compare import (DEFAULT_TOLERANCES, compare_output, load_npz_feeds, make_samples,
                              validate_runtime)

FP32 = DEFAULT_TOLERANCES["fp32"]
INPUTS = [TensorSpec("x", (1, 4), "float32"), TensorSpec("n", (), "int64"), TensorSpec("t", (), "float32")]
OUTPUTS = [TensorSpec("y", (1, 4), "float32"), TensorSpec("exit_index", (), "int64")]


def test_compare_output_passes_within_fp32_and_reports_stats():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8, 8)).astype(np.float32)
    got = ref + np.float32(1e-7)
    cmp = compare_output("y", ref, got, FP32, 0)
    assert cmp and cmp.max_abs_err == pytest.approx(1e-7, rel=0.2)
    assert 0 < cmp.max_rel_l2 < 1e-6


def test_compare_output_fails_on_one_perturbed_element_and_on_rel_l2():
    ref = np.ones((4, 4), np.float32)
    got = ref.copy()
    got[2, 3] += 1e-2
    cmp = compare_output("y", ref, got, FP32, 3)
    assert not cmp
    assert "1/16 elements outside" in cmp.failures[0] and "sample 3" in cmp.failures[0]
    assert any("relative L2" in f for f in cmp.failures)


def test_compare_output_integers_exact_nan_and_shape():
    assert not compare_output("exit_index", np.array(2), np.array(3), FP32, 0)
    assert compare_output("exit_index", np.array(2), np.array(2), FP32, 0)
    nan = compare_output("y", np.zeros(3, np.float32), np.array([0, np.nan, 0], np.float32), FP32, 0)
    assert not nan and "NaN" in nan.failures[0]
    assert "shape" in compare_output("y", np.zeros((2, 3)), np.zeros((3, 2)), FP32, 0).failures[0]


def test_validate_runtime_collects_every_failure_and_records_paths():
    samples = [{"x": np.full((1, 4), i, np.float32), "n": np.array(i, np.int64), "t": np.array(0.5, np.float32)}
               for i in range(3)]
    refs = [{"y": s["x"] * 2, "exit_index": np.array(i % 2)} for i, s in enumerate(samples)]

    def candidate(feed):  # right on sample 0, wrong value on 1, wrong exit on 2
        i = int(feed["n"])
        return {"y": feed["x"] * 2 + (0.5 if i == 1 else 0), "exit_index": np.array(1 if i == 2 else i % 2)}

    result = validate_runtime("fake", candidate, samples, refs, INPUTS, OUTPUTS, FP32)
    assert result.status == "failed" and not result
    assert len(result.failures) >= 2
    assert any("sample 1" in f for f in result.failures) and any("'exit_index' sample 2" in f for f in result.failures)
    assert result.paths == {"n": [0, 1, 2], "exit_index": [0, 1]}
    assert result.to_json()["status"] == "failed" and result.to_json()["max_abs_err"] == pytest.approx(0.5)


def test_make_samples_keeps_ints_and_scalar_floats_randomises_tensors():
    example = {"x": np.zeros((1, 4), np.float32), "n": np.array(5, np.int64), "t": np.array(0.5, np.float32)}
    extra = [{"n": np.array(1, np.int64)}]
    samples = make_samples(INPUTS, example, extra, 6)
    assert len(samples) == 6
    assert int(samples[1]["n"]) == 1 and np.array_equal(samples[1]["x"], example["x"])
    assert all(int(s["n"]) == 5 and float(s["t"]) == 0.5 for s in samples[2:])
    assert all(s["x"].dtype == np.float32 and np.abs(s["x"]).sum() > 0 for s in samples[2:])
    with pytest.raises(EdgekitError, match="unknown inputs bogus"):
        make_samples(INPUTS, example, [{"bogus": np.zeros(1)}], 2)


def test_load_npz_feeds_single_multi_and_errors(tmp_path):
    ok = {"x": np.zeros((1, 4), np.float32), "n": np.array(1, np.int64), "t": np.array(0.1, np.float32)}
    np.savez(tmp_path / "one.npz", **ok)
    assert len(load_npz_feeds(tmp_path / "one.npz", INPUTS)) == 1
    np.savez(tmp_path / "two.npz", **{f"{i}/{k}": v for i in range(2) for k, v in ok.items()})
    assert len(load_npz_feeds(tmp_path / "two.npz", INPUTS)) == 2
    np.savez(tmp_path / "dtype.npz", **{**ok, "n": np.array(1, np.int32)})
    with pytest.raises(EdgekitError, match="n is int32, the model expects int64"):
        load_npz_feeds(tmp_path / "dtype.npz", INPUTS)
    np.savez(tmp_path / "shape.npz", **{**ok, "x": np.zeros((1, 5), np.float32)})
    with pytest.raises(EdgekitError, match=r"x has shape \[1, 5\], the model expects \[1, 4\]"):
        load_npz_feeds(tmp_path / "shape.npz", INPUTS)
    with pytest.raises(EdgekitError, match="does not exist"):
        load_npz_feeds(tmp_path / "none.npz", INPUTS)


def test_a_task_metric_gates_int8_and_element_wise_errors_are_only_reported():
    """DESIGN.md §7: int8 with a task metric is gated by the metric and the exit paths; rel L2 is reported.
    Shapes, NaN/Inf and exit paths still fail; without a task metric, or with the user's own tolerances,
    the element-wise gate stays."""
    from edgekit.validation.compare import Tolerance
    from edgekit.validation.parity import gate_tolerance

    metric_gated = gate_tolerance("int8", None, task_metric=True)
    assert not metric_gated.elementwise and metric_gated.path_agreement == 0.95
    assert gate_tolerance("int8", None, task_metric=False).elementwise  # cosine: the similarity gate stays
    assert gate_tolerance("fp32", None, task_metric=True).elementwise
    mine = Tolerance(None, 0.0, 1e-3)
    assert gate_tolerance("int8", mine, task_metric=True) is mine  # --rel-l2 given: the user's gate

    samples = [{"x": np.full((1, 4), i + 1.0, np.float32), "n": np.array(i, np.int64), "t": np.array(0.5, np.float32)}
               for i in range(20)]
    refs = [{"y": s["x"] * 2, "exit_index": np.array(0)} for s in samples]

    def off_by_10_percent(feed):
        return {"y": feed["x"] * 2.2, "exit_index": np.array(0)}

    gated = validate_runtime("int8", off_by_10_percent, samples, refs, INPUTS, OUTPUTS, metric_gated, "int8")
    assert gated.status == "passed" and gated.max_rel_l2 == pytest.approx(0.1, rel=1e-3)
    assert gated.to_json()["gate"] == "metric" and gated.to_json()["max_rel_l2"] == pytest.approx(0.1, rel=1e-3)
    plain = validate_runtime("int8", off_by_10_percent, samples, refs, INPUTS, OUTPUTS, DEFAULT_TOLERANCES["int8"],
                             "int8")
    assert plain.status == "failed" and "gate" not in plain.to_json()

    def nan_and_flipped(feed):
        i = int(feed["n"])
        y = feed["x"] * 2.0
        if i == 0:
            y = y.copy()
            y[0, 1] = np.nan
        return {"y": y, "exit_index": np.array(1 if i in (1, 2) else 0)}  # 2 of 20 paths flip: 90% < 95%

    broken = validate_runtime("int8", nan_and_flipped, samples, refs, INPUTS, OUTPUTS, metric_gated, "int8")
    assert broken.status == "failed"
    assert any("NaN" in f for f in broken.failures) and any("exit paths match" in f for f in broken.failures)
