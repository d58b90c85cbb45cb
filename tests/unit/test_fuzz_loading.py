"""Fuzzing manifest and testdata-index loading (issue #22): whatever a bundle holds, loading it and resolving
its artifacts and testdata raise EdgekitError or succeed, nothing else. 5,000 + 5,000 hypothesis cases
(well under 60 s); crashers it found are kept in fuzz_regressions/ and replayed first."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a dev extra")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from edgekit.bundle import Bundle, Manifest, finalize_artifacts  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.specs import TensorSpec  # noqa: E402
from edgekit.validation.testdata import read_testdata, samples_from_index, write_testdata  # noqa: E402

CASES = 5000  # per test: 10,000 in all
REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
FUZZ = settings(max_examples=CASES, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["../x", "/etc/hostname", "model.onnx", "testdata/index.json",
                                                          "float32", "int64", "edgekit.bundle/1", "a\x00b", "~", ""]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)


def _paths(tree, prefix=()):
    """Every key path of a JSON tree (dict keys, list indices)."""
    yield prefix
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _mutated(base, data) -> object:
    """`base` with 1–3 random places replaced by random JSON, deleted, or wrapped."""
    tree = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(tree))
        path = data.draw(st.sampled_from(paths))
        if not path:
            return data.draw(json_values)
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        action = data.draw(st.sampled_from(["replace", "delete", "wrap"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = data.draw(json_values)
    return tree


def _real_bundle(root: Path) -> dict:
    """A small well-formed bundle on disk (two artifacts with sidecars, testdata); returns its manifest."""
    (root / "model.onnx").write_bytes(b"onnx-bytes")
    (root / "model.xml").write_bytes(b"<net/>")
    (root / "model.bin").write_bytes(b"weights")
    write_testdata(root, [({"image": np.zeros((1, 2), np.float32), "n": np.array(3, np.int64)},
                           {"y": np.ones(2, np.float32), "exit_index": np.array(1, np.int64)})])
    artifacts = finalize_artifacts(root, {"onnx": {"path": "model.onnx", "opset": 18},
                                          "openvino": {"path": "model.xml", "weights": "model.bin"}})
    manifest = Manifest(source={"spec": "zoo:toy", "kind": "zoo", "sha256": "0" * 64},
                        inputs=[TensorSpec("image", (1, "h"), "float32"), TensorSpec("n", (), "int64", 3, (1, 4))],
                        outputs=[TensorSpec("y", (2,), "float32")], artifacts=artifacts)
    return manifest.to_json()


def _load_and_use(root: Path, text: str) -> None:
    """Bundle.load after its file read (Bundle.from_text: the same parsing), then everything loading does."""
    try:
        bundle = Bundle.from_text(root, text)
        from edgekit.runtimes import runtimes_for

        runtimes_for(bundle)
        for key, entry in bundle.manifest.artifacts.items():
            for e in entry if isinstance(entry, list) else [entry]:
                bundle.verified_path(e, key)
        samples_from_index(root / "testdata", INDEX_TEXT[0])
    except EdgekitError:
        pass


INDEX_TEXT = [""]  # the bundle's valid testdata index, set by the fixture


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "b"
    root.mkdir()
    manifest = _real_bundle(root)
    INDEX_TEXT[0] = (root / "testdata" / "index.json").read_text()
    return root, manifest, INDEX_TEXT[0]


def test_regressions_replay(bundle_dir):
    root, manifest, _ = bundle_dir
    for case in sorted(REGRESSIONS.glob("*.json")):
        data = json.loads(case.read_text())
        if data["kind"] == "manifest":
            _load_and_use(root, data["text"])
        else:
            try:
                samples_from_index(root / "testdata", data["text"])
            except EdgekitError:
                pass
    (root / "manifest.json").write_text(json.dumps(manifest))  # and through the file, once
    assert read_testdata(Bundle.load(root).path)


@FUZZ
@given(data=st.data())
def test_fuzz_manifest(bundle_dir, data):
    root, manifest, _ = bundle_dir
    choice = data.draw(st.integers(0, 9))
    if choice == 0:  # raw bytes-ish text, mostly not JSON
        text = data.draw(st.text(max_size=64))
    elif choice == 1:
        text = json.dumps(data.draw(json_values))
    else:
        text = json.dumps(_mutated(manifest, data))
    _load_and_use(root, text)


@FUZZ
@given(data=st.data())
def test_fuzz_testdata_index(bundle_dir, data):
    root, _, index = bundle_dir
    base = json.loads(index)
    choice = data.draw(st.integers(0, 9))
    text = data.draw(st.text(max_size=64)) if choice == 0 else json.dumps(_mutated(base, data))
    for verify in (True, False):
        try:
            samples_from_index(root / "testdata", text, verify)
        except EdgekitError:
            pass
