"""#19 §2: how int8 moves zoo:rbqe's first-exit score, per image (a bias a threshold offset could undo, or not).

    python benchmarks/rbqe_int8_scores.py [--fp32 BUNDLE] [--int8 BUNDLE]

The scores live inside the graph (IQAM on the exit image, compared with the threshold input in the `If`
condition), so they are read from outside: exit 1 is taken iff its score > threshold, and a bisection on the
threshold input (22 halvings of [-1, 2]) finds the score to 1e-6 in each OpenVINO IR (f32 hint). Feeds: the
int8 bundle's testdata and the model's task-metric feeds (held-out photos at QF 10-50, thresholds 2 and 0.79),
i.e. the samples its validation's exit-path gate counts. Defaults: results/bundles/ke-rbqe-fp32 and
ke-rbqe-nncf (benchmarks/keep_exits_rbqe.py). Writes results/rbqe_int8_scores.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, default=HERE / "results" / "bundles" / "ke-rbqe-fp32")
    parser.add_argument("--int8", type=Path, default=HERE / "results" / "bundles" / "ke-rbqe-nncf")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    import openvino as ov

    from edgekit.env import environment
    from edgekit.validation.testdata import read_testdata
    from edgekit.zoo.rbqe_task import task_metric

    core = ov.Core()
    requests = {k: core.compile_model(str(b / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
                .create_infer_request() for k, b in (("fp32", args.fp32), ("int8", args.int8))}

    def exit_of(kind: str, image, threshold: float) -> int:
        result = requests[kind].infer({"image": image, "threshold": np.array(threshold, np.float32)})
        return int(np.asarray(next(v for port, v in result.items() if "exit" in port.get_any_name())))

    def first_score(kind: str, image) -> float | None:
        lo, hi = -1.0, 2.0  # exit 0 at t = lo unless its score is below -1
        if exit_of(kind, image, lo) != 0:
            return None
        for _ in range(22):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if exit_of(kind, image, mid) == 0 else (lo, mid)
        return (lo + hi) / 2

    feeds = [f for f, _ in read_testdata(args.int8)] + list(task_metric(0.79).feeds)
    scores: dict[bytes, dict] = {}
    rows = []
    for i, feed in enumerate(feeds):
        image, threshold = np.asarray(feed["image"], np.float32), float(feed["threshold"])
        key = image.tobytes()
        if key not in scores:
            scores[key] = {k: first_score(k, image) for k in requests}
        exits = {f"{k}_exit": exit_of(k, image, threshold) for k in requests}
        rows.append({"sample": i, "threshold": threshold, **exits, **{f"{k}_score1": scores[key][k] for k in requests}})
    pairs = np.array([(s["fp32"], s["int8"]) for s in scores.values() if None not in (s["fp32"], s["int8"])])
    shift = pairs[:, 1] - pairs[:, 0]
    ranks = [np.argsort(np.argsort(pairs[:, j])) for j in (0, 1)]
    flips = [r for r in rows if r["fp32_exit"] != r["int8_exit"]]
    summary = {"samples": len(rows), "images": len(pairs), "flips": len(flips),
               "path_agreement": 1 - len(flips) / len(rows),
               "shift": {"median": float(np.median(shift)), "mean": float(shift.mean()), "std": float(shift.std()),
                         "min": float(shift.min()), "max": float(shift.max())},
               "rank_correlation": float(np.corrcoef(*ranks)[0, 1])}
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "environment": environment(),
              "fp32": str(args.fp32), "int8": str(args.int8), "summary": summary, "rows": rows,
              "scores": pairs.tolist()}
    (HERE / "results" / "rbqe_int8_scores.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print("\n| fp32 score | int8 score | shift |\n|---:|---:|---:|")
    for a, b in sorted(map(tuple, pairs)):
        print(f"| {a:.4f} | {b:.4f} | {b - a:+.4f} |")


if __name__ == "__main__":
    main()
