"""`edgekit validate`: re-check a bundle's artifacts against its reference on stored and fresh inputs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.common import (AsJson, Atol, Feed, JsonOut, NoVerify, RelL2, Rtol, feeds_from, split_values,
                                tolerance_from)
from edgekit.errors import ValidationFailed
from edgekit.ui import Reporter


def validate_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r", help="Runtimes (default: every artifact's)."),
    samples: int = typer.Option(8, min=1),
    atol: Atol = None,
    rtol: Rtol = None,
    rel_l2: RelL2 = None,
    data: Optional[Path] = typer.Option(
        None, help="Extra feeds: .npz (one array per input with a sample axis, or K/NAME), .npy or a folder."),
    feed: Feed = None,
    no_verify: NoVerify = False,
    as_json: AsJson = False,
):
    """Re-validate a bundle's artifacts against its reference on stored and fresh inputs."""
    from edgekit.bundle import Bundle
    from edgekit.cli.render import print_validation
    from edgekit.runtimes import RUNNERS, runtimes_for
    from edgekit.validation.compare import load_npz_feeds
    from edgekit.validation.parity import failure_message, merge_validation, revalidate_bundle

    json_out = JsonOut(as_json)
    bundle = Bundle.load(bundle_path, verify=not no_verify)
    runtimes = split_values(runtime) or runtimes_for(bundle)
    for name in runtimes:
        RUNNERS.get(name)
    # every artifact this run will use (digests, or only containment with --no-verify), before the reference runs
    bundle.verify_artifacts({RUNNERS.get(n).artifact for n in runtimes} | {"torch", "onnx_fp32", "testdata"})
    extra = load_npz_feeds(data, bundle.manifest.inputs) if data else []
    results = revalidate_bundle(bundle, runtimes, samples, tolerance_from(atol, rtol, rel_l2), extra,
                                feeds_from(feed), Reporter())
    block = {k: v.to_json() for k, v in results.items()}
    if no_verify:  # the evidence says it was measured on artifacts nobody checked
        block = {k: {**v, "verified": False} for k, v in block.items()}
    bundle.manifest.validation = merge_validation(bundle.manifest.validation, block)
    bundle.save_manifest()
    json_out.emit(block)
    print_validation(block)
    failed = [v for v in results.values() if not v]
    if failed:
        raise ValidationFailed(failure_message(failed), results)
