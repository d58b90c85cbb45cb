"""`edgekit verify`'s checks: every artifact entry of the manifest and the whole testdata/ (index against
`artifacts.testdata`, each .bin against the index), all problems collected before reporting."""

from __future__ import annotations

from edgekit.integrity import VerifyReport


def verify_bundle(bundle) -> VerifyReport:
    """Check every artifact (and sidecar) plus the testdata; never raises for a bad file: it is reported."""
    from edgekit.validation.testdata import read_testdata

    report = VerifyReport()
    saved = bundle.verify
    bundle.verify = True
    try:
        for key, entry in bundle.manifest.artifacts.items():
            entries = entry if isinstance(entry, list) else [entry]
            for i, e in enumerate(entries):
                label = f"{key}[{i}]" if isinstance(entry, list) else key
                path = e.get("path") if isinstance(e, dict) else None
                report.run(f"{label}: {path}", lambda e=e, label=label: bundle.verified_path(e, label))
        if (bundle.path / "testdata").exists():
            report.run("testdata: every sample file", lambda: _testdata(bundle, read_testdata))
    finally:
        bundle.verify = saved
    return report


def _testdata(bundle, read_testdata) -> None:
    from edgekit.errors import EdgekitError

    if "testdata" not in bundle.manifest.artifacts:
        raise EdgekitError(f"{bundle.path}: testdata/ is not in the manifest (artifacts.testdata), so its index "
                           f"cannot be verified")
    samples = read_testdata(bundle.path, verify=True)
    if not samples:
        raise EdgekitError(f"{bundle.path}: testdata/index.json lists no samples")
