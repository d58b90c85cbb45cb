"""`edgekit validate`: re-check a bundle's artifacts against its reference on stored and fresh inputs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.common import AsJson, Atol, Feed, JsonOut, RelL2, Rtol, feeds_from, split_values, tolerance_from
from edgekit.errors import ValidationFailed
from edgekit.ui import Reporter


def validate_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r", help="Runtimes (default: every artifact's)."),
    samples: int = typer.Option(8, min=1),
    atol: Atol = None,
    rtol: Rtol = None,
    rel_l2: RelL2 = None,
    data: Optional[Path] = typer.Option(None, help=".npz with extra feeds."),
    feed: Feed = None,
    as_json: AsJson = False,
):
    """Re-validate a bundle's artifacts against its reference on stored and fresh inputs."""
    from edgekit.bundle import Bundle
    from edgekit.cli.render import print_validation
    from edgekit.runtimes import RUNNERS, runtimes_for
    from edgekit.validation.compare import load_npz_feeds
    from edgekit.validation.parity import failure_message, revalidate_bundle

    json_out = JsonOut(as_json)
    bundle = Bundle.load(bundle_path)
    runtimes = split_values(runtime) or runtimes_for(bundle)
    for name in runtimes:
        RUNNERS.get(name)
    extra = load_npz_feeds(data, bundle.manifest.inputs) if data else []
    results = revalidate_bundle(bundle, runtimes, samples, tolerance_from(atol, rtol, rel_l2), extra,
                                feeds_from(feed), Reporter())
    block = {k: v.to_json() for k, v in results.items()}
    bundle.manifest.validation.update(block)
    bundle.save_manifest()
    json_out.emit(block)
    print_validation(block)
    failed = [v for v in results.values() if not v]
    if failed:
        raise ValidationFailed(failure_message(failed), results)
