"""Two bundles of the same model (e.g. exported before and after a refactor): ONNX op counts (main graph and
If/Loop bodies), the outputs of both `model.onnx` in ONNX Runtime on every stored testdata feed of the first
bundle, and their latency, interleaved.

    python benchmarks/compare_bundles.py OLD_BUNDLE NEW_BUNDLE [--rounds 7] [--iters 3] [--feed K] [--json OUT]

Used for #25 (zoo:rbqe, zoo:storm and zoo:toy moved onto edgekit.flow: the graph must not grow or slow down).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def op_counts(path: Path) -> dict:
    import onnx

    counts: collections.Counter = collections.Counter()

    def walk(graph, where):
        for node in graph.node:
            counts[(where, node.op_type)] += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g, "body")

    walk(onnx.load(str(path), load_external_data=False).graph, "main")
    by_op: collections.Counter = collections.Counter()
    for (_, op), n in counts.items():
        by_op[op] += n
    return {"main": sum(n for (w, _), n in counts.items() if w == "main"),
            "bodies": sum(n for (w, _), n in counts.items() if w == "body"), "ops": dict(sorted(by_op.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--feed", type=int, default=-1, help="the testdata feed to time (default: the last)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    import onnxruntime as ort

    from edgekit.env import cpu_info
    from timing_loop import interleaved
    from edgekit.validation.testdata import read_testdata

    counts = {name: op_counts(bundle / "model.onnx") for name, bundle in (("old", args.old), ("new", args.new))}
    options = ort.SessionOptions()
    sessions = {name: ort.InferenceSession(str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
                for name, bundle in (("old", args.old), ("new", args.new))}
    names = [o.name for o in sessions["old"].get_outputs()]
    feeds = [feed for feed, _ in read_testdata(args.old)]
    worst = 0.0
    for feed in feeds:
        old, new = (dict(zip(names, s.run(names, feed))) for s in sessions.values())
        for key in names:
            if np.issubdtype(old[key].dtype, np.integer):
                assert np.array_equal(old[key], new[key]), key
            else:
                worst = max(worst, float(np.max(np.abs(old[key].astype(np.float64) - new[key]))))
    feed = feeds[args.feed]
    for session in sessions.values():
        session.run(names, feed)
    times = interleaved({name: (lambda s=s: s.run(names, feed)) for name, s in sessions.items()},
                        args.rounds, args.iters)
    result = {"cpu": cpu_info(), "old": str(args.old), "new": str(args.new), "ops": counts,
              "feeds": len(feeds), "max_abs_diff": worst,
              "p50_ms": {k: statistics.median(v) for k, v in times.items()},
              "new_vs_old": statistics.median(times["new"]) / statistics.median(times["old"])}
    print(f"ops old: main {counts['old']['main']}, bodies {counts['old']['bodies']}; "
          f"new: main {counts['new']['main']}, bodies {counts['new']['bodies']}")
    changed = {op: (counts["old"]["ops"].get(op, 0), counts["new"]["ops"].get(op, 0))
               for op in set(counts["old"]["ops"]) | set(counts["new"]["ops"])
               if counts["old"]["ops"].get(op, 0) != counts["new"]["ops"].get(op, 0)}
    print(f"op types that changed (old, new): {changed or 'none'}")
    print(f"outputs on {len(feeds)} stored feeds: max |old − new| {worst:.2e}")
    print(f"ORT p50 old {result['p50_ms']['old']:.2f} ms, new {result['p50_ms']['new']:.2f} ms, "
          f"new/old {result['new_vs_old']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
