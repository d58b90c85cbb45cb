"""`edgekit pack`: a bundle plus the native runner and the runtime libraries it needs, for a device
without Python (unpack, `./run.sh`: testdata check, then benchmark JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import AsJson, Force, JsonOut
from edgekit.ui import console


def pack_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    runtime: str = typer.Option("openvino", "--runtime", help="Runtime to ship (openvino)."),
    lang: str = typer.Option("cpp", "--lang", help="cpp (OpenVINO C++ API) or c (OpenVINO C API) runner."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="A .tar.gz/.tgz tarball, or a folder (default: BUNDLE-RUNTIME-LANG.tar.gz)."),
    device: str = typer.Option("CPU", help="OpenVINO device whose plugin to ship (CPU, GPU, NPU)."),
    force: Force = False,
    as_json: AsJson = False,
):
    """Write a self-contained pack of BUNDLE for a device with no Python: the C++ or C runner (RUNPATH
    $ORIGIN/lib), the OpenVINO libraries and plugin it loads, the model files, manifest and testdata, and
    run.sh, which checks the testdata and then prints benchmark JSON."""
    from edgekit.native.pack import pack_bundle

    json_out = JsonOut(as_json)
    result = pack_bundle(bundle_path, lang, runtime, out, device, force)
    json_out.emit(result.to_json())
    console.print(f"pack: {result.out} ({result.size_bytes / 1e6:.1f} MB; {result.unpacked_bytes / 1e6:.1f} MB "
                  f"unpacked; {len(result.libs)} libraries)", soft_wrap=True, markup=False)
    console.print("on the device: tar xzf the pack, then ./run.sh [--iters N | --seconds S] (no Python needed)",
                  soft_wrap=True, markup=False)
