"""Reproduce every results table in benchmarks/README.md on this machine.

    python benchmarks/run_all.py            # full run (tens of minutes on 2 cores)
    python benchmarks/run_all.py --quick    # smoke run, < 5 min: fewer iterations, smaller inputs

Each section exports what it needs with edgekit's own pipeline (bundles under benchmarks/results/bundles,
not committed), times every row in an isolated child process (`edgekit.bench.parent`), writes
benchmarks/results/<section>.json with the machine's description, and rewrites the section's table in
benchmarks/README.md between its `<!-- results:NAME -->` markers. Ratios are to PyTorch eager measured
in the same run; latencies are medians.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
RUNTIMES = ["torch", "onnxruntime", "openvino"]
# --reuse: take the bundles of an earlier run (re-time only). Off by default: a bundle from an older
# edgekit measured a graph the exporter no longer makes (RBQE's exits table once timed the concat graph).
REUSE = False


def machine() -> dict:
    from edgekit.env import environment

    info = environment()
    info["date"] = time.strftime("%Y-%m-%d")
    return info


def peak_gflops(quick: bool) -> dict:
    """The ceiling: a large fp32 matmul through torch and through OpenVINO on this CPU."""
    import openvino as ov
    import torch
    from openvino import opset13 as ops

    n = 1024 if quick else 2048
    a = torch.randn(n, n)
    for _ in range(2):
        a @ a
    times = []
    for _ in range(5 if quick else 10):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    torch_gflops = 2 * n**3 / np.median(times) / 1e9
    x = ops.parameter([n, n], np.float32)
    model = ov.Model([ops.matmul(x, ops.constant(np.random.rand(n, n).astype(np.float32)), False, False)], [x])
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    feed = np.random.rand(n, n).astype(np.float32)
    compiled(feed)
    times = []
    for _ in range(5 if quick else 10):
        start = time.perf_counter()
        compiled(feed)
        times.append(time.perf_counter() - start)
    return {"matmul_n": n, "torch_gflops": torch_gflops, "openvino_gflops": 2 * n**3 / np.median(times) / 1e9}


def export(spec: str, name: str, precision: str = "fp32", targets=("onnx", "openvino"), **options):
    from edgekit.bundle import Bundle
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source
    from edgekit.ui import Reporter

    out = RESULTS / "bundles" / name
    if REUSE and (out / "manifest.json").exists():
        return Bundle.load(out)
    return export_bundle(resolve_source(spec), out, ExportOptions(targets=targets, precision=precision, force=True,
                                                                  **options), Reporter())


def bench(bundle, feed: dict, quick: bool, runtimes=None, throughput=False) -> list:
    from edgekit.bench.parent import run_cases
    from edgekit.bench.plan import plan_cases
    from edgekit.bench.stats import BenchSettings, add_torch_ratios

    cases = [c for c in plan_cases(bundle, runtimes or RUNTIMES, precisions=[])
             if throughput or c.mode == "latency"]
    settings = BenchSettings(warmup=2 if quick else 3, iters=5 if quick else 20)
    results = run_cases(bundle, cases, settings, feed)
    add_torch_ratios(results)
    return results


def row(result, **extra) -> dict:
    return {"runtime": result.runtime, "precision": result.precision, "mode": result.mode, "status": result.status,
            "reason": result.reason, "p50_ms": result.latency_ms.get("p50"), "p90_ms": result.latency_ms.get("p90"),
            "vs_torch": result.vs_torch, "peak_mb": result.peak_rss_mb, "runner": result.runner, **extra}


# --- sections ------------------------------------------------------------------------------------


def section_rbqe_exits(quick: bool, peak: dict) -> dict:
    """RBQE: latency when the graph stops at each exit (threshold-driven), at 256×256 (128 with --quick)."""
    import torch

    from edgekit.zoo import load_zoo
    from edgekit.zoo.rbqe import exit_macs
    from edgekit.zoo.rbqe_feeds import exit_scores

    size = 128 if quick else 256
    spec = "zoo:rbqe?width=8,weights=none" if quick else "zoo:rbqe"
    bundle = export(spec, "rbqe-quick" if quick else "rbqe")
    model = load_zoo().get("rbqe").build(**({"width": 8, "weights": "none"} if quick else {}))
    images = np.concatenate([_rbqe_crops(size), _tiled_exit_crops(model, size)])
    scores = exit_scores(model, torch.from_numpy(images)).double().numpy()
    macs = exit_macs(model, size, size)
    rows, picked = [], []
    for k in range(scores.shape[1]):
        # exit k needs score_k >= threshold > every earlier score: take the crop with the widest margin
        margin = scores[:, k] - (scores[:, :k].max(axis=1) if k else 0.0)
        best = int(np.argmax(margin)) if k else 0
        if k == scores.shape[1] - 1:
            threshold = 2.0
        elif k == 0:
            threshold = 0.0
        elif margin[best] <= 0:
            continue  # no crop stops at exit k: no threshold selects it
        else:
            threshold = float(scores[best, k] - margin[best] / 2)
        picked.append({"exit": k + 1, "crop": best, "scores": scores[best].tolist()})
        feed = {"image": images[best : best + 1], "threshold": np.array(threshold, np.float32)}
        for r in bench(bundle, feed, quick):
            gflops = 2 * macs[k] / (r.latency_ms["p50"] / 1e3) / 1e9 if r else None
            rows.append(row(r, exit=k + 1, threshold=threshold, gmac=macs[k] / 1e9, gflops=gflops))
    return {"size": size, "spec": spec, "picked": picked, "macs": macs, "rows": rows, "peak": peak}


def _tiled_exit_crops(model, size: int) -> np.ndarray:
    """The 64×64 validation crops that reach exits 2–4, tiled to size×size. IQAM is a mean over 8×8
    patches, so a tiled crop scores about as its tile does: with the shipped checkpoint no whole 256²
    photo crop stops at exits 2–4 (scores fall with depth), but these do."""
    tiles = [np.asarray(f["image"])[0, 0] for f in model.validation_feeds()]
    reps = [(size + t.shape[0] - 1) // t.shape[0] for t in tiles]
    return np.stack([np.tile(t, (r, r))[:size, :size] for t, r in zip(tiles, reps)])[:, None].astype(np.float32)


def _rbqe_crops(size: int) -> np.ndarray:
    """size×size luma crops of the held-out JPEG photos at every QF (random images without scikit-image)."""
    from edgekit.errors import SourceError

    crops = []
    try:
        from edgekit.zoo.rbqe_data import QUALITY_FACTORS, compressed_pairs

        for qf in QUALITY_FACTORS:
            for _, comp, _ in compressed_pairs(qf, "heldout"):
                h, w = comp.shape
                for y, x in ((0, 0), (h - size, w - size), ((h - size) // 2 // 8 * 8, (w - size) // 2 // 8 * 8)):
                    if y >= 0 and x >= 0:
                        crops.append(comp[y : y + size, x : x + size])
    except SourceError:
        pass
    if not crops:
        crops = list(np.random.default_rng(0).random((4, size, size)))
    return np.stack(crops)[:, None].astype(np.float32)


def section_storm_steps(quick: bool, peak: dict) -> dict:
    """StoRM: latency vs the run-time step count N inside one exported Loop."""
    import torch

    from edgekit.zoo.storm import make_noise

    steps = [1, 2, 4] if quick else [1, 5, 10, 30, 50]
    spec = "zoo:storm?nf=4,levels=2,max_steps=4,weights=none" if quick else "zoo:storm"
    bundle = export(spec, "storm-quick" if quick else "storm")
    max_steps = bundle.manifest.inputs[2].shape[0] - 1
    frames = 64 if quick else 128
    spec_in = torch.randn(1, 2, 256, frames, generator=torch.Generator().manual_seed(0)) * 0.3
    noise = make_noise(max_steps, frames, seed=1).numpy()
    rows = []
    for n in steps:
        feed = {"noisy_spec": spec_in.numpy(), "num_steps": np.array(n, np.int64), "noise": noise}
        for r in bench(bundle, feed, quick):
            rows.append(row(r, num_steps=n, nfe=1 + 2 * n))
    return {"spec": spec, "frames": frames, "steps": steps, "rows": rows}


def section_runtimes(quick: bool, peak: dict) -> dict:
    """Every zoo model on every CPU runtime, OpenVINO fp32 vs bf16 vs throughput mode."""
    rows = []
    for spec, name in (("zoo:toy", "toy"),):
        bundle = export(spec, name)
        from edgekit.bench.plan import bench_feed

        for r in bench(bundle, bench_feed(bundle, {}), quick, throughput=True):
            rows.append(row(r, model=spec))
    return {"rows": rows, "peak": peak}


SECTIONS = {"runtimes": section_runtimes, "rbqe_exits": section_rbqe_exits, "storm_steps": section_storm_steps}


# --- README tables -------------------------------------------------------------------------------


def _fmt(value, spec=".2f") -> str:
    return "–" if value is None else format(value, spec)


def table(name: str, data: dict) -> str:
    info = data["machine"]
    head = (f"_Measured {info['date']} on {info['cpu']['model']} ({info['cpu']['cores']} cores; "
            f"{' '.join(info['cpu']['isa'])}), torch {info['backends']['torch']}, onnxruntime "
            f"{info['backends']['onnxruntime']}, openvino {info['backends']['openvino']}; median of "
            f"{data['iters']} runs after warm-up{' (--quick)' if data['quick'] else ''}._\n\n")
    if name == "rbqe_exits":
        lines = ["| exit | threshold | GMAC | runtime | p50 ms | × vs torch | GFLOP/s |", "|---:|---:|---:|---|---:|---:|---:|"]
        lines += [f"| {r['exit']} | {r['threshold']:.3f} | {r['gmac']:.2f} | {r['runtime']} | {_fmt(r['p50_ms'])} | "
                  f"{_fmt(r['vs_torch'])} | {_fmt(r['gflops'], '.1f')} |" for r in data["rows"]]
        ratios = _exit_ratios(data["rows"])
        tail = "\n\nExit-1 / exit-5 latency: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
        tail += f" (MAC ratio {data['macs'][0] / data['macs'][-1]:.2f}). " if data["macs"] else ""
        tail += (f"Peak fp32 matmul on this CPU: torch {data['peak']['torch_gflops']:.0f} GFLOP/s, OpenVINO "
                 f"{data['peak']['openvino_gflops']:.0f} GFLOP/s.")
        return head + "\n".join(lines) + tail
    if name == "storm_steps":
        lines = ["| N | NFE | runtime | p50 ms | × vs torch |", "|---:|---:|---|---:|---:|"]
        lines += [f"| {r['num_steps']} | {r['nfe']} | {r['runtime']} | {_fmt(r['p50_ms'])} | {_fmt(r['vs_torch'])} |"
                  for r in data["rows"]]
        return head + "\n".join(lines) + "\n\n" + _step_scaling(data)
    lines = ["| model | runtime | precision | mode | status | p50 ms | × vs torch | peak MB |", "|---|---|---|---|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['mode']} | {r['status']} | {_fmt(r['p50_ms'], '.3f')} | "
              f"{_fmt(r['vs_torch'])} | {_fmt(r['peak_mb'], '.0f')} |" for r in data["rows"]]
    return head + "\n".join(lines)


def _exit_ratios(rows) -> dict:
    out = {}
    for runtime in RUNTIMES:
        p50 = {r["exit"]: r["p50_ms"] for r in rows if r["runtime"] == runtime and r["p50_ms"]}
        if p50 and min(p50) == 1 and max(p50) > 1:
            out[runtime] = p50[1] / p50[max(p50)]
    return out


def _step_scaling(data) -> str:
    parts = []
    for runtime in RUNTIMES:
        p50 = {r["num_steps"]: r["p50_ms"] for r in data["rows"] if r["runtime"] == runtime and r["p50_ms"]}
        if len(p50) >= 2:
            lo, hi = min(p50), max(p50)
            per_step = (p50[hi] - p50[lo]) / (hi - lo)
            parts.append(f"{runtime}: N={lo}/N={hi} = {p50[lo] / p50[hi]:.3f} (NFE ratio "
                         f"{(1 + 2 * lo) / (1 + 2 * hi):.3f}), {per_step:.2f} ms per step")
    return "Scaling with N inside one graph — " + "; ".join(parts) + "."


def update_readme(name: str, text: str) -> None:
    content = README.read_text()
    pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(\n<!-- /results:{name} -->)", re.S)
    if not pattern.search(content):
        content += f"\n<!-- results:{name} -->\n{text}\n<!-- /results:{name} -->\n"
    else:
        content = pattern.sub(lambda m: m.group(1) + text + m.group(2), content)
    README.write_text(content)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (< 5 min): tiny models, few iterations")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--no-readme", action="store_true", help="write JSON only, leave README.md alone")
    parser.add_argument("--reuse", action="store_true", help="reuse the bundles of an earlier run (re-time only)")
    args = parser.parse_args(argv)
    global REUSE
    REUSE = args.reuse
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    peak = peak_gflops(args.quick)
    for name in args.only or list(SECTIONS):
        start = time.perf_counter()
        data = SECTIONS[name](args.quick, peak)
        data.update(machine=info, quick=args.quick, iters=5 if args.quick else 20,
                    seconds=time.perf_counter() - start)
        suffix = "-quick" if args.quick else ""
        (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        if not args.no_readme and not args.quick:
            update_readme(name, table(name, data))
        print(f"{name}: {data['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
