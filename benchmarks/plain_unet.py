"""#20's plain conv net: a 32-channel U-Net at 256² (no control flow), every precision `--precision auto`
considers, against PyTorch eager fp32 in the same run.

    python benchmarks/plain_unet.py [--rounds 20]

Also a model source: `edgekit export benchmarks/plain_unet.py:build --precision auto --calib CALIB.npz`.
Bundles go to results/bundles/unet-<precision> (not committed): fp32, bf16, int8 and mixed, and int8-nncf /
mixed-nncf (the openvino IR quantized by NNCF, `--quantizer nncf`), each validated (no task metric: cosine
similarity of outputs; int8 calibrated on 32 generated images), then `export --precision auto` into
results/bundles/unet-auto. Timing: OpenVINO (each bundle's own inference precision,
default threads) and eager, interleaved, medians over rounds on one 1×3×256×256 image. Writes
results/plain_unet.json and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
BUNDLES = HERE / "results" / "bundles"


def _block(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class PlainUNet(nn.Module):
    """Three levels (32, 64, 128 channels), max-pool down, transposed-conv up, skip concatenation."""

    input_names = ("image",)
    output_names = ("out",)

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.enc1, self.enc2, self.mid = _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2), _block(4 * w, 2 * w)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2), _block(2 * w, w)
        self.head = nn.Conv2d(w, 3, 1)

    def forward(self, image):
        e1 = self.enc1(image)
        e2 = self.enc2(nn.functional.max_pool2d(e1, 2))
        m = self.mid(nn.functional.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return image + self.head(d1)

    def example_inputs(self):
        return (torch.rand(1, 3, 256, 256),)


def build():
    torch.manual_seed(0)
    return PlainUNet().eval()


def calib_file(path: Path, count: int = 32) -> Path:
    """Smooth random images in [0, 1] (sums of a few low-frequency cosines plus noise): generated, not downloaded."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    images = {}
    for i in range(count):
        img = np.zeros((3, 256, 256))
        for _ in range(4):
            fy, fx, phase = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 6.3)]
            img += rng.uniform(0.1, 0.3, (3, 1, 1)) * np.cos(2 * np.pi * (fy * yy + fx * xx) + phase)
        img = np.clip(0.5 + img + rng.normal(0, 0.02, img.shape), 0, 1)
        images[f"{i}/image"] = img[None].astype(np.float32)
    np.savez(path, **images)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from timing_loop import interleaved
    from edgekit.bundle import Bundle
    from edgekit.env import environment
    from edgekit.export.precision_auto import export_auto
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.runtimes import open_runner
    from edgekit.sources import resolve_source
    from edgekit.ui import Reporter

    BUNDLES.mkdir(parents=True, exist_ok=True)
    calib = str(calib_file(BUNDLES / "unet-calib.npz"))
    source = resolve_source(f"{Path(__file__)}:build")
    bundles = {}
    for name in ("fp32", "bf16", "int8", "mixed", "int8-nncf", "mixed-nncf"):
        precision, _, quantizer = name.partition("-")
        options = ExportOptions(precision=precision, calib=calib, calib_samples=32, force=True,
                                quantizer=quantizer or "edgekit")
        bundles[name] = export_bundle(source, BUNDLES / f"unet-{name}", options, Reporter())
    auto = export_auto(source, BUNDLES / "unet-auto", ExportOptions(calib=calib, calib_samples=32, force=True),
                       Reporter())
    feed = {"image": np.load(calib)["0/image"]}
    module = build()

    def eager(f):
        with torch.no_grad():
            return module(torch.from_numpy(f["image"]))

    runs = {"eager": eager}
    runners = {p: open_runner(b, "openvino") for p, b in bundles.items()}
    runs.update({p: r.run for p, r in runners.items()})
    for run in runs.values():
        run(feed)
    times = interleaved({k: (lambda run=run: run(feed)) for k, run in runs.items()}, args.rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for k in runs:
        v = Bundle.load(BUNDLES / f"unet-{k}").manifest.validation.get("openvino", {}) if k != "eager" else {}
        rows.append({"variant": k, "ms": med[k], "x_eager": med[k] / med["eager"], "validation": v.get("status"),
                     "max_rel_l2": v.get("max_rel_l2")})
    record = auto.manifest.pipeline["precision_auto"]
    result = {"env": environment(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "rounds": args.rounds, "rows": rows, "precision_auto": record}
    (HERE / "results" / "plain_unet.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| variant | OpenVINO ms | × eager | validation | rel L2 vs fp32 |\n|---|---:|---:|---|---:|")
    for r in rows:
        rel = f"{r['max_rel_l2']:.1e}" if r["max_rel_l2"] is not None else "–"
        print(f"| {r['variant']} | {r['ms']:.2f} | {r['x_eager']:.3f} | {r['validation'] or '–'} | {rel} |")
    print(f"\n--precision auto chose {record['chosen']} ({record.get('quantizer', '-')}): {record['why']}")


if __name__ == "__main__":
    main()
