"""Every zoo entry has a tiny configuration that builds and runs (Optimum's test_all_models_tested)."""

import pytest
import torch

from edgekit.errors import EdgekitError, SourceError
from edgekit.zoo import load_zoo, parse_zoo_spec

ZOO = load_zoo()


@pytest.mark.parametrize("name", ZOO.names())
def test_every_zoo_entry_has_a_tiny_case_that_runs(name):
    entry = ZOO.get(name)
    assert entry.tiny, f"zoo:{name} registers no tiny test configuration"
    model = entry.build(**entry.tiny)
    with torch.no_grad():
        outputs = model(*model.example_inputs())
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert len(outputs) == len(model.output_names)
    assert all(torch.isfinite(o.float()).all() for o in outputs)


def test_zoo_spec_parsing_and_errors():
    assert parse_zoo_spec("zoo:toy?width=8,max_steps=2") == ("toy", {"width": "8", "max_steps": "2"})
    with pytest.raises(EdgekitError, match="unknown zoo model 'nope'"):
        ZOO.get("nope")
    with pytest.raises(SourceError, match="unknown parameter 'depth'"):
        ZOO.get("toy").build(depth="3")
    with pytest.raises(SourceError, match="width='wide' is not a valid int"):
        ZOO.get("toy").build(width="wide")
