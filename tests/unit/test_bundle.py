import json

import pytest

from edgekit.bundle import MANIFEST, Bundle, staged_bundle
from edgekit.errors import EdgekitError


def test_staged_bundle_appears_only_when_complete(tmp_path):
    out = tmp_path / "b"
    with pytest.raises(RuntimeError):
        with staged_bundle(out) as root:
            (root / "model.onnx").write_text("partial")
            raise RuntimeError("export died")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with staged_bundle(out) as root:
        (root / MANIFEST).write_text("{}")
        assert not out.exists()
    assert (out / MANIFEST).exists() and list(tmp_path.iterdir()) == [out]


def test_existing_output_needs_force_and_force_replaces(tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / MANIFEST).write_text("{}")
    with pytest.raises(EdgekitError, match="already exists .*--force"):
        with staged_bundle(out):
            pass
    with staged_bundle(out, force=True) as root:
        (root / MANIFEST).write_text('{"new": 1}')
    assert json.loads((out / MANIFEST).read_text()) == {"new": 1}


def test_force_refuses_to_replace_a_directory_that_is_not_a_bundle(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_text("x")
    with pytest.raises(EdgekitError, match="not a bundle"):
        with staged_bundle(out, force=True):
            pass
    assert (out / "holiday.jpg").exists()


def test_bundle_load_errors_name_the_problem(tmp_path):
    with pytest.raises(EdgekitError, match="not a bundle"):
        Bundle.load(tmp_path)
    (tmp_path / MANIFEST).write_text('{"schema": "edgekit.bundle/1"}')
    with pytest.raises(EdgekitError, match="missing edgekit_version, source"):
        Bundle.load(tmp_path)
