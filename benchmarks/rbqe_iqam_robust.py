"""Issue #19 §2: the noise-robust IQAM (`zoo:rbqe?iqam=robust`) against the paper's, on held-out photos.

    python benchmarks/rbqe_iqam_robust.py

Four OpenVINO bundles (f32 hint): the paper IQAM fp32 (results/bundles/tune-rbqe) and int8
(chain-rbqe-int8, `edgekit quantize` of it), the robust IQAM fp32 (rbqe-robust) and int8 (rbqe-robust-int8).
Data: chain_rbqe.py's 25 held-out 256² crops (5 photos × JPEG QF 10–50). At every candidate threshold and the
shipped 0.79: each variant's exits and PSNR, how often the robust IQAM takes the paper's exit in fp32, and
how often int8 takes fp32's exit (per IQAM). The fitted threshold per IQAM: the shallowest mean exit within
0.3 dB of the paper fp32 at 0.79. Writes results/rbqe_iqam_robust.json and prints the Markdown tables.
No timing: decisions and quality only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from chain_rbqe import BUDGET_DB, CANDIDATES, SHIPPED, measure, samples  # noqa: E402

BUNDLES = HERE / "results" / "bundles"
VARIANTS = {("paper", "fp32"): "tune-rbqe", ("paper", "int8"): "chain-rbqe-int8",
            ("robust", "fp32"): "rbqe-robust", ("robust", "int8"): "rbqe-robust-int8"}


def main() -> None:
    import openvino as ov

    from edgekit.env import environment

    core = ov.Core()
    data = samples()
    runs = {}
    for key, name in VARIANTS.items():
        request = core.compile_model(str(BUNDLES / name / "model.xml"), "CPU",
                                     {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
        runs[key] = (lambda r: lambda f: (lambda o: (o["enhanced"], int(o["exit_index"])))(r.infer(f)))(request)
    thresholds = sorted(set(CANDIDATES) | {SHIPPED})
    curve = {}
    for t in thresholds:
        for key, run in runs.items():
            scores, exits = measure(run, data, t, [[] for _ in data])
            curve[(key, t)] = (float(np.mean(scores)), exits)
    floor = curve[(("paper", "fp32"), SHIPPED)][0] - BUDGET_DB

    def agree(a, b, t):
        return float(np.mean([x == y for x, y in zip(curve[(a, t)][1], curve[(b, t)][1])]))

    rows = []
    for t in thresholds:
        rows.append({"threshold": t,
                     **{f"{i}_{p}": {"psnr": curve[((i, p), t)][0], "exits": curve[((i, p), t)][1]}
                        for i, p in VARIANTS},
                     "robust_vs_paper_fp32": agree(("robust", "fp32"), ("paper", "fp32"), t),
                     "int8_vs_fp32_paper": agree(("paper", "int8"), ("paper", "fp32"), t),
                     "int8_vs_fp32_robust": agree(("robust", "int8"), ("robust", "fp32"), t)})
    fitted = {}
    for iqam in ("paper", "robust"):
        ok = [t for t in CANDIDATES if curve[((iqam, "fp32"), t)][0] >= floor]
        fitted[iqam] = min(ok, key=lambda t: (np.mean(curve[((iqam, "fp32"), t)][1]), -t))
    payload = {"machine": {**environment(), "date": time.strftime("%Y-%m-%d")}, "samples": len(data),
               "floor_psnr": floor, "fitted": fitted, "rows": rows}
    (HERE / "results" / "rbqe_iqam_robust.json").write_text(json.dumps(payload, indent=2) + "\n")

    def hist(exits):
        return "/".join(str(exits.count(k)) for k in range(1, 6))

    print("| threshold | paper fp32 exits | PSNR | robust fp32 exits | PSNR | robust = paper (fp32) | "
          "int8 = fp32 (paper) | int8 = fp32 (robust) |")
    print("|---:|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['threshold']:g} | {hist(r['paper_fp32']['exits'])} | {r['paper_fp32']['psnr']:.3f} | "
              f"{hist(r['robust_fp32']['exits'])} | {r['robust_fp32']['psnr']:.3f} | {r['robust_vs_paper_fp32']:.0%} | "
              f"{r['int8_vs_fp32_paper']:.0%} | {r['int8_vs_fp32_robust']:.0%} |")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("robust_vs_paper_fp32", "int8_vs_fp32_paper",
                                                              "int8_vs_fp32_robust")}
    print(f"\nmean over thresholds: {json.dumps({k: round(v, 3) for k, v in mean.items()})}")
    for iqam, t in fitted.items():
        fp, q = curve[((iqam, "fp32"), t)], curve[((iqam, "int8"), t)]
        print(f"{iqam}: fitted threshold {t:g}: fp32 {fp[0]:.3f} dB exits {hist(fp[1])}; int8 {q[0]:.3f} dB "
              f"exits {hist(q[1])}")


if __name__ == "__main__":
    main()
