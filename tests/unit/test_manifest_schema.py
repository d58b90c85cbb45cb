"""Every manifest edgekit writes conforms to the published schema (edgekit/schemas/manifest.schema.json),
and the schema rejects what the contract forbids."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import edgekit
from conftest import manifest_of

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev extra")
SCHEMA = json.loads((Path(edgekit.__file__).parent / "schemas" / "manifest.schema.json").read_text())


@pytest.mark.openvino
def test_exported_manifest_conforms(toy_bundle):
    jsonschema.validate(manifest_of(toy_bundle), SCHEMA)


@pytest.mark.openvino
@pytest.mark.parametrize("breakage", [
    lambda m: m.pop("control_flow"),
    lambda m: m.update(schema="edgekit.bundle/2"),
    lambda m: m["artifacts"]["onnx"].update(sha256="not-a-hash"),
    lambda m: m["validation"]["openvino"].update(status="warning"),
    lambda m: m["inputs"][0].update(dtype="complex64"),
    lambda m: m["validation"].update(tensorrt={"status": "skipped"}),  # skipped needs its reason
])
def test_schema_rejects_contract_breaks(toy_bundle, breakage):
    manifest = copy.deepcopy(manifest_of(toy_bundle))
    breakage(manifest)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, SCHEMA)
