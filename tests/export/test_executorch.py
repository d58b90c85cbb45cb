"""--target executorch: `model.pte` lowered from the torch.export program with `cond` kept, `while_loop` bounded
to a `scan`, XNNPACK inside branches and loop bodies; validated through `executorch.runtime` on every exit and
step count; bad input gets one line and no bundle."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from conftest import manifest_of, run_cli
from edgekit.bundle import Bundle
from edgekit.errors import BackendUnavailable, EdgekitError, ExportError
from edgekit.validation.testdata import read_testdata

pytestmark = [pytest.mark.executorch]


def test_toy_pte_validates_every_branch_and_step_with_compute_delegated(et_toy_bundle):
    m = manifest_of(et_toy_bundle)
    entry = m["artifacts"]["executorch"]
    assert entry["path"] == "model.pte" and entry["max_steps"] == 4 and len(entry["sha256"]) == 64
    block = m["validation"]["executorch"]
    assert block["status"] == "passed" and block["max_rel_l2"] <= 1e-5
    assert block["paths"] == {"num_steps": [1, 2, 3, 4], "exit_index": [0, 1]}
    # Every convolution (stem, both branches, the loop body) runs in XNNPACK, none on portable kernels.
    assert entry["partitions"]["delegated"] >= 4
    assert not [op for op in entry["partitions"]["portable_ops"] if "convolution" in op]


def test_pte_matches_pytorch_on_fresh_inputs(et_toy_bundle):
    from edgekit.runtimes import open_runner
    from edgekit.zoo.toy import build_toy

    model = build_toy(width=4, max_steps=4)
    rng = np.random.default_rng(7)
    with open_runner(Bundle.load(et_toy_bundle), "executorch") as runner:
        for threshold, steps in ((-1.0, 0), (-1.0, 3), (2.0, 1), (2.0, 4)):
            image = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
            feed = {"image": image, "threshold": np.array(threshold, np.float32), "num_steps": np.array(steps)}
            got = runner.run(feed)
            with torch.no_grad():
                want, exit_index = model(*(torch.from_numpy(np.asarray(v)) for v in feed.values()))
            assert int(got["exit_index"]) == int(exit_index)
            assert np.linalg.norm(got["output"] - want.numpy()) <= 1e-5 * np.linalg.norm(want.numpy())


def test_a_loop_program_takes_its_traced_shape_only(et_toy_bundle):
    from edgekit.runtimes import open_runner

    feed = {"image": np.zeros((1, 3, 48, 48), np.float32), "threshold": np.array(0.5, np.float32),
            "num_steps": np.array(2)}
    with open_runner(Bundle.load(et_toy_bundle), "executorch") as runner:
        with pytest.raises(EdgekitError, match=r"input 'image' has shape \[1, 3, 48, 48\]; this model.pte was "
                                               r"built for \[1, 3, 32, 32\] only"):
            runner.run(feed)


def test_storm_pte_matches_stored_references_at_every_step_count(storm_bundle, tmp_path):
    """The session's tiny StoRM: its Loop becomes a scan of max_steps = 4; N = 1, 2, 4 match the stored
    references (fp32), and the U-Net convolutions inside the loop body are delegated."""
    from edgekit.export.executorch import pte_from_program
    from edgekit.runtimes.executorch import ExecuTorchRunner

    entry = pte_from_program(storm_bundle / "model.pt2", tmp_path, max_steps=4)
    assert entry["shapes"]["noise"]["shape"][0] == 5 and "max" not in entry["shapes"]["noisy_spec"]
    assert not [op for op in entry["partitions"]["portable_ops"] if "convolution" in op]
    m = Bundle.load(storm_bundle).manifest
    steps = set()
    with ExecuTorchRunner(tmp_path / "model.pte", m.inputs, m.outputs, entry) as runner:
        for feed, reference in read_testdata(storm_bundle):
            got = runner.run(feed)["enhanced_spec"]
            want = reference["enhanced_spec"]
            assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)
            steps.add(int(feed["num_steps"]))
    assert steps == {1, 2, 4}


def _one_error(result, out) -> str:
    """Exit ≠ 0, one `error:` line, no traceback, no bundle; returns the line."""
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and not out.exists(), result.stderr[-2000:]
    return errors[0]


UNBOUNDED = '''
import torch
from torch._higher_order_ops.while_loop import while_loop


class Unbounded(torch.nn.Module):
    def forward(self, x, n):
        return while_loop(lambda i, y: i < n, lambda i, y: (i + 1, y * 0.5), (torch.zeros((), dtype=torch.int64), x))[1]

    def example_inputs(self):
        return torch.ones(2, 3), torch.tensor(3)


def build():
    return Unbounded()
'''


def test_a_while_loop_without_a_bound_is_one_error_naming_the_node(tmp_path):
    source = tmp_path / "unbounded.py"
    source.write_text(UNBOUNDED)
    out = tmp_path / "b"
    result = run_cli("export", f"{source}:build", "--target", "executorch", "--out", out)
    error = _one_error(result, out)
    assert "node 'while_loop' is a while_loop" in error and "--et-max-steps" in error, error
    # With a bound it exports and validates (the loop halves x n times).
    result = run_cli("export", f"{source}:build", "--target", "executorch", "--et-max-steps", "5", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert manifest_of(out)["validation"]["executorch"]["status"] == "passed"


def test_an_onnx_source_cannot_be_lowered_and_says_why(toy_bundle, tmp_path):
    out = tmp_path / "b"
    result = run_cli("export", toy_bundle / "model.onnx", "--target", "executorch", "--out", out)
    error = _one_error(result, out)
    assert "model.pt2" in error and "ONNX source" in error, error


def test_missing_executorch_names_the_extra(monkeypatch, storm_bundle, tmp_path):
    from edgekit.export.executorch import pte_from_program

    monkeypatch.setitem(sys.modules, "executorch.exir", None)  # an import of it now raises ImportError
    with pytest.raises(BackendUnavailable, match=r"edgekit\[executorch\]"):
        pte_from_program(storm_bundle / "model.pt2", tmp_path, max_steps=4)
    assert not (tmp_path / "model.pte").exists()


def test_declared_max_steps_reads_the_attribute_then_the_steps_knob():
    from edgekit.export.executorch import declared_max_steps
    from edgekit.zoo.toy import build_toy

    assert declared_max_steps(build_toy(max_steps=6)) == 6

    class KnobOnly(torch.nn.Module):
        def tuning_knobs(self):
            return [{"input": "n", "kind": "steps", "candidates": [2, 9, 4]}]

    assert declared_max_steps(KnobOnly()) == 9
    assert declared_max_steps(torch.nn.Identity()) is None


def test_self_check_catches_a_program_that_disagrees(et_toy_bundle, tmp_path):
    """The check behind the fallback to portable branches: the bundle's .pte agrees with its own program and
    disagrees once a branch weight of the reference changes (the first probe, threshold -1e9, takes it)."""
    from edgekit.export.executorch import self_check
    from edgekit.export.executorch_loops import bound_loops

    bounded, _ = bound_loops(torch.export.load(str(et_toy_bundle / "model.pt2")), 4, 4)
    buffer = (et_toy_bundle / "model.pte").read_bytes()
    assert self_check(buffer, bounded, tmp_path) is None
    name = next(k for k in bounded.state_dict if "exit0" in k and k.endswith("weight"))
    bounded.state_dict[name].add_(0.5)
    assert "values differ" in self_check(buffer, bounded, tmp_path)
    assert list(tmp_path.iterdir()) == []  # its scratch folder is gone


BUFFER_WEIGHT = '''
import torch
from torch import nn


class BufferConv(nn.Module):
    """A branch whose conv weight is a buffer (as RBQE's IQAM filters), used at the top level too, and a conv on
    a weight slice."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.register_buffer("filters", torch.randn(128, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                             persistent=False)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x, threshold):
        y = torch.relu(self.stem(x))
        score = nn.functional.conv2d(x[:, :, 4:, 4:], self.filters, stride=8).mean()

        def deeper(y, x, score):
            # a slice of a weight, as RBQE's concat-free nodes: folded to a constant, the conv stays delegated
            out = nn.functional.conv2d(y[:, :2], self.head.weight[:, :2], self.head.bias) + x
            return out, nn.functional.conv2d(out[:, :, 4:, 4:], self.filters, stride=8).mean().reshape(1)

        def stop(y, x, score):
            return x.clone(), score.reshape(1).clone()

        return torch.cond(score < threshold, deeper, stop, (y, x, score))

    def example_inputs(self):
        return torch.rand(1, 1, 64, 64), torch.tensor(0.0)

    def validation_feeds(self):
        x = self.example_inputs()[0]
        return [{"x": x, "threshold": torch.tensor(t)} for t in (-1e9, 1e9)]


def build():
    torch.manual_seed(0)  # fixed weights and example: unseeded, output_1 (a mean near 0) once missed the fp32 rel-L2 gate
    return BufferConv().eval()
'''


def test_a_buffer_weight_inside_a_branch_is_delegated_and_correct(tmp_path):
    """ExecuTorch 1.5.1 ran an XNNPACK conv in a branch wrong when its weight was a plain-tensor constant;
    edgekit hands it over as a Parameter, so the branch stays delegated (no fallback) and validates; a weight
    slice is folded, so its conv is delegated too."""
    source = tmp_path / "bufferconv.py"
    source.write_text(BUFFER_WEIGHT)
    out = tmp_path / "b"
    result = run_cli("export", f"{source}:build", "--target", "executorch", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    m = manifest_of(out)
    partitions = m["artifacts"]["executorch"]["partitions"]
    assert "branches" not in partitions, partitions  # the self-check passed: no fallback to portable branches
    assert not [op for op in partitions["portable_ops"] if "convolution" in op], partitions
    assert m["validation"]["executorch"]["status"] == "passed"
