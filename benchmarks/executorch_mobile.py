"""Mobile artifacts against ONNX Runtime, same process, interleaved rounds: ExecuTorch's `model.pte` (XNNPACK,
compute inside `cond` branches and loop bodies delegated) and ONNX Runtime Mobile's `.ort` (amd64) against the
`.onnx` in ONNX Runtime (CPU EP).

    python benchmarks/executorch_mobile.py [--rounds 7] [--iters 3] [--models rbqe,storm] [--baseline-pte DIR]

zoo:rbqe at exit 5 (threshold 2, 256² input) and zoo:storm at N = 20 (its example input), from the bundles of
benchmarks/tune_zoo.py (exported there if missing). The .pte is lowered from the bundle's model.pt2 once and
kept in results/bundles/<bundle>-pte/ (delete it to lower again). Each round times `--iters` calls of every
variant in turn after one warm-up call each; the table gives the median per call over all rounds and the
ratio to the `.onnx`. `--baseline-pte DIR` (a kept `<bundle>-pte` folder, e.g. one lowered before a change)
adds that .pte to the same rounds as "pte (baseline)", for models whose bundle name DIR starts with.
Writes results/executorch_mobile.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def pte_for(bundle: Path, max_steps: int | None) -> tuple[Path, dict]:
    from edgekit.export.executorch import PTE_FILE, pte_from_program

    out = RESULTS / "bundles" / f"{bundle.name}-pte"
    entry_file = out / "entry.json"
    if not entry_file.is_file():
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        entry = pte_from_program(bundle / "model.pt2", out, max_steps=max_steps, log=print)
        entry["lowering_s"] = round(time.perf_counter() - start, 1)
        entry_file.write_text(json.dumps(entry, indent=2) + "\n")
    return out / PTE_FILE, json.loads(entry_file.read_text())


def stored_parity(runner, bundle) -> dict:
    """The .pte on every testdata sample of the bundle (every exit / step count it validated): the worst
    relative L2 error against the stored PyTorch reference, and the paths covered."""
    from edgekit.validation.testdata import read_testdata

    worst, paths = 0.0, set()
    for feed, reference in read_testdata(bundle.path):
        got = runner.run(feed)
        for key, want in reference.items():
            if np.issubdtype(want.dtype, np.integer):
                assert np.array_equal(got[key], want), f"{key}: {got[key]} vs {want}"
                paths.add(f"{key}={int(want)}")
            else:
                worst = max(worst, float(np.linalg.norm(got[key] - want) / max(np.linalg.norm(want), 1e-12)))
        if "num_steps" in feed:
            paths.add(f"num_steps={int(feed['num_steps'])}")
    return {"max_rel_l2": worst, "paths": sorted(paths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--models", default="rbqe,storm")
    parser.add_argument("--baseline-pte", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    import onnxruntime as ort

    from edgekit.bundle import Bundle
    from edgekit.export.ort_mobile import ort_from_onnx
    from edgekit.runtimes.executorch import ExecuTorchRunner
    from ort_mobile import feeds, report
    from timing_loop import interleaved
    from tune_zoo import bundle_for

    rows = []
    for model in args.models.split(","):
        path = bundle_for(model, reuse=True)
        bundle = Bundle.load(path)
        feed = feeds(model, bundle)
        pte, entry = pte_for(path, 50 if model == "storm" else None)
        with tempfile.TemporaryDirectory() as tmp:
            ort_from_onnx(path / "model.onnx", Path(tmp), "amd64")
            names = [o.name for o in bundle.manifest.outputs]
            sessions = {name: ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
                        for name, file in (("onnx", path / "model.onnx"), ("ort amd64", Path(tmp) / "model.ort"))}
            runs = {name: (lambda s=s: dict(zip(names, s.run(names, feed)))) for name, s in sessions.items()}
            runner = ExecuTorchRunner(pte, bundle.manifest.inputs, bundle.manifest.outputs, entry)
            parity = stored_parity(runner, bundle)
            print(f"{model}: .pte vs the stored references: rel L2 ≤ {parity['max_rel_l2']:.1e}, {parity['paths']}")
            runs["pte (executorch)"] = lambda: runner.run(feed)
            base_dir = args.baseline_pte
            if base_dir is not None and base_dir.name.startswith(path.name):
                base_entry = json.loads((base_dir / "entry.json").read_text())
                baseline = ExecuTorchRunner(base_dir / "model.pte", bundle.manifest.inputs, bundle.manifest.outputs,
                                            base_entry)
                runs["pte (baseline)"] = lambda: baseline.run(feed)
            outputs = {name: run() for name, run in runs.items()}  # warm-up, and the outputs to compare
            times = interleaved(runs, args.rounds, args.iters)
        base = statistics.median(times["onnx"])
        for name, samples in times.items():
            diff = max(float(np.max(np.abs(np.asarray(outputs[name][k], np.float64) - outputs["onnx"][k])))
                       for k in names)
            rows.append({"model": model, "artifact": name, "p50_ms": statistics.median(samples),
                         "vs_onnx": statistics.median(samples) / base, "calls": len(samples),
                         "max_abs_vs_onnx": diff,
                         **({"lowering_s": entry.get("lowering_s"), "partitions": entry["partitions"],
                             "stored_parity": parity} if name == "pte (executorch)" else {}),
                         **({"partitions": base_entry["partitions"], "from": str(base_dir)}
                            if name == "pte (baseline)" else {})})
    report(rows, "executorch_mobile.json")


if __name__ == "__main__":
    main()
