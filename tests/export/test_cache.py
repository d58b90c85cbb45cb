"""The export cache (issue #26): a second export of the same source and options reuses the ONNX, the
target builds and the reference outputs (byte-identical bundle artifacts); any change to what a stage
reads misses; --no-cache and EDGEKIT_CACHE=off bypass it; a torn entry is a miss."""

from __future__ import annotations

import json
import shutil

import pytest

from edgekit.export.cache import ExportCache, default_cache_dir
from edgekit.pipeline import ExportOptions, export_bundle
from edgekit.sources import resolve_source

TOY = "zoo:toy?width=4,max_steps=2"


def _artifacts(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    return {k: v for k, v in manifest["artifacts"].items()}, manifest["validation"]


def _refuse(*args, **kwargs):
    raise AssertionError("the cache should have served this stage")


@pytest.mark.openvino
def test_second_export_is_served_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    options = ExportOptions(targets=("onnx", "openvino"), samples=4)
    export_bundle(resolve_source(TOY), tmp_path / "a", options)
    kinds = {p.name: len(list(p.iterdir())) for p in (tmp_path / "cache").iterdir()}
    assert kinds == {"onnx": 1, "target": 1, "reference": 1, "feeds": 1}  # feeds: zoo:toy's validation_feeds()

    import edgekit.export.onnx
    import edgekit.export.openvino
    from edgekit.runtimes import torch as torch_runner

    monkeypatch.setattr(edgekit.export.onnx, "onnx_from_torch", _refuse)
    monkeypatch.setattr(edgekit.export.openvino, "ir_from_onnx", _refuse)
    monkeypatch.setattr(torch_runner.TorchRunner, "run", _refuse)
    export_bundle(resolve_source(TOY), tmp_path / "b", options)
    (first, valid_a), (second, valid_b) = _artifacts(tmp_path / "a"), _artifacts(tmp_path / "b")
    assert first == second  # same files, same sha256, same cleanup stats
    assert valid_b["onnxruntime"]["status"] == valid_b["openvino"]["status"] == "passed"
    assert valid_a["openvino"]["max_abs_err"] == valid_b["openvino"]["max_abs_err"]
    assert (tmp_path / "a/testdata/index.json").read_text() == (tmp_path / "b/testdata/index.json").read_text()


def test_keys_follow_what_each_stage_reads(tmp_path):
    cache = ExportCache(tmp_path)
    toy, toy_again, wider = resolve_source(TOY), resolve_source(TOY), resolve_source("zoo:toy?width=8,max_steps=2")
    key = cache.onnx_key(toy, 18, True, None)
    assert key == cache.onnx_key(toy_again, 18, True, None)
    assert len({key, cache.onnx_key(wider, 18, True, None), cache.onnx_key(toy, 17, True, None),
                cache.onnx_key(toy, 18, False, None)}) == 4
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"graph")
    target = cache.target_key("openvino", onnx, "fp32", {})
    assert target != cache.target_key("openvino", onnx, "fp16", {})
    assert target != cache.target_key("tensorrt", onnx, "fp32", {})
    assert cache.target_key("tensorrt", onnx, "fp32", {"trt_arch": "sm86"}) != cache.target_key(
        "tensorrt", onnx, "fp32", {"trt_arch": "sm89"})
    onnx.write_bytes(b"graph2")
    assert target != cache.target_key("openvino", onnx, "fp32", {})


def test_no_cache_and_off_bypass_and_a_torn_entry_is_a_miss(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", "off")
    assert default_cache_dir() is None and ExportCache.open() is None
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "c"))
    assert ExportCache.open(enabled=False) is None
    export_bundle(resolve_source(TOY), tmp_path / "a", ExportOptions(targets=("onnx",), samples=2, cache=False))
    assert not any((tmp_path / "c" / kind).exists() for kind in ("onnx", "target", "reference"))

    cache = ExportCache.open()
    (tmp_path / "src").mkdir()
    (tmp_path / "src/f.bin").write_bytes(b"x")
    cache.put("onnx", "k", tmp_path / "src", ["f.bin"], {"n": 1})
    assert cache.get("onnx", "k", tmp_path / "dst") == {"n": 1} and (tmp_path / "dst/f.bin").read_bytes() == b"x"
    (tmp_path / "c/onnx/k/f.bin").unlink()
    assert cache.get("onnx", "k", tmp_path / "dst2") is None
    shutil.rmtree(tmp_path / "c/onnx/k")
    assert cache.get("onnx", "k", tmp_path / "dst3") is None


def test_the_test_session_uses_its_own_cache():
    import os

    from conftest import SESSION_CACHE

    assert os.environ["EDGEKIT_CACHE"] == SESSION_CACHE and ".cache" not in SESSION_CACHE


class _Hooked:
    """A module whose validation_feeds() hook is slow in real models (zoo:rbqe runs every exit)."""

    calls = 0

    @staticmethod
    def build():
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 1, 1)

            def validation_feeds(self):
                _Hooked.calls += 1
                return [{"x": torch.full((1, 1, 2, 2), 3.0), "t": torch.tensor(0.5)}]

        return Net()


def test_validation_feeds_hook_is_memoized_per_weights(tmp_path, monkeypatch):
    import torch

    from edgekit.sources.python import module_validation_feeds

    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "c"))
    net = _Hooked.build()
    first = module_validation_feeds(net)
    again = module_validation_feeds(net)
    assert _Hooked.calls == 1 and float(again[0]["x"].max()) == 3 and again[0]["t"].shape == ()
    assert first[0]["x"].dtype == again[0]["x"].dtype == "float32"
    with torch.no_grad():
        net.conv.weight.add_(1)  # other weights: the hook runs again
    module_validation_feeds(net)
    assert _Hooked.calls == 2
    monkeypatch.setenv("EDGEKIT_CACHE", "off")
    module_validation_feeds(net)
    assert _Hooked.calls == 3


def test_a_torn_entry_is_replaced_and_a_complete_one_kept(tmp_path):
    cache = ExportCache(tmp_path / "c")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/f.bin").write_bytes(b"one")
    cache.put("target", "k", tmp_path / "src", ["f.bin"], {"v": 1})
    (tmp_path / "src/f.bin").write_bytes(b"two")
    cache.put("target", "k", tmp_path / "src", ["f.bin"], {"v": 2})  # same key stored twice: the first stays
    assert cache.get("target", "k", tmp_path / "d1") == {"v": 1}
    (tmp_path / "c/target/k/f.bin").unlink()
    cache.put("target", "k", tmp_path / "src", ["f.bin"], {"v": 2})  # torn: replaced
    assert cache.get("target", "k", tmp_path / "d2") == {"v": 2} and (tmp_path / "d2/f.bin").read_bytes() == b"two"
    assert not [p for p in (tmp_path / "c/target").iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_a_zoo_models_key_covers_the_flow_code_its_forward_inherits():
    """zoo:rbqe's forward is edgekit.flow's ExitChain (a base class, no submodule of its own there): an edit to
    edgekit/flow must miss the cache like an edit to edgekit/zoo."""
    from edgekit.export.cache import module_files
    from edgekit.zoo.rbqe import build_rbqe

    names = {(p.parent.name, p.name) for p in module_files(build_rbqe(width=4, weights="none"))}
    assert {("flow", "exits.py"), ("zoo", "rbqe.py")} <= names
