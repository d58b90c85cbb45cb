"""Python vs native (C++ and C) OpenVINO latency on the zoo models, same run: `edgekit bench --native cpp,c`.

    python benchmarks/native_bench.py [--reuse] [--seconds S] [--threads N] [--repeat R]

For each case (zoo:rbqe at exit 1 and at exit 5, zoo:storm at N = 5) one `edgekit bench BUNDLE --runtime
openvino --precision fp32 --native cpp,c --feed ...` times the Python binding (its own process) and the
C++/C runners' `--bench` (theirs) on the bundle's first testdata sample, the same feed, the same
OpenVINO CPU plugin, LATENCY hint and f32 precision. Bundles: benchmarks/results/bundles/tune-{rbqe,storm}
(written by tune_zoo.py; exported here when missing or without --reuse). The whole set runs `--repeat`
times, cases interleaved, so a load change on this shared 2-core machine hits every API alike; the table
gives, per API, the median over the repeats of each run's p50 (and their range). Writes
results/native_bench.json and prints the table for benchmarks/README.md. Read the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# (label, model, feed): RBQE's threshold picks the exit (0: every score passes, exit 1; 2: none, exit 5)
CASES = [("zoo:rbqe exit 1", "rbqe", {"threshold": 0.0}), ("zoo:rbqe exit 5", "rbqe", {"threshold": 2.0}),
         ("zoo:storm N = 5", "storm", {"num_steps": 5})]
APIS = ("python", "c++", "c")


def observed_path(bundle: Path, feed: dict) -> str:
    """The exit (RBQE) or step count (StoRM) the timed feed takes, from one Python OpenVINO run."""
    from edgekit.bench.plan import bench_feed
    from edgekit.bundle import Bundle
    from edgekit.runtimes import open_runner

    b = Bundle.load(bundle, verify=False)
    with open_runner(b, "openvino") as runner:
        out = runner.run(bench_feed(b, feed))
    if "exit_index" in out:
        return f"exit {int(out['exit_index']) + 1}"
    return f"N = {feed['num_steps']}"


def run_case(bundle: Path, feed: dict, seconds: float | None, threads: int | None) -> dict:
    argv = [sys.executable, "-m", "edgekit.cli", "bench", str(bundle), "--runtime", "openvino", "--precision",
            "fp32", "--native", "cpp,c", "--json"]
    argv += ["--seconds", str(seconds)] if seconds else []
    argv += ["--threads", str(threads)] if threads else []
    for name, value in feed.items():
        argv += ["--feed", f"{name}={value}"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def table(cases: list[dict]) -> str:
    lines = ["| case | input | Python p50 ms | C++ p50 ms | C p50 ms | C++ / Python | C / Python | load ms (Py / C++ / C) "
             "| peak MB (Py / C++ / C) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case in cases:
        runs = case["runs"]  # one {api: row} per repeat
        p50 = {api: [run[api]["latency_ms"]["p50"] for run in runs] for api in APIS}
        mid = {api: _median(v) for api, v in p50.items()}
        cell = {api: f"{mid[api]:.2f}" + (f" ({min(v):.2f}–{max(v):.2f})" if len(v) > 1 else "") for api, v in p50.items()}
        load = " / ".join(f"{_median([run[api]['load_ms'] for run in runs]):.0f}" for api in APIS)
        peak = " / ".join(f"{_median([run[api]['peak_rss_mb'] for run in runs]):.0f}" for api in APIS)
        lines.append(f"| {case['label']} ({case['path']}) | {case['input']} | {cell['python']} | {cell['c++']} | "
                     f"{cell['c']} | {mid['c++'] / mid['python']:.2f} | {mid['c'] / mid['python']:.2f} | {load} | {peak} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="use the bundles of an earlier run (no re-export)")
    parser.add_argument("--seconds", type=float, default=None, help="time budget per row (default: bench's)")
    parser.add_argument("--threads", type=int, default=None, help="OpenVINO threads, every row (default: its own)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the whole set, interleaved")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from tune_zoo import bundle_for  # the same fp32 bundles tune_zoo.py writes
    from edgekit.env import environment

    bundles = {model: bundle_for(model, args.reuse) for model in dict.fromkeys(m for _, m, _ in CASES)}
    cases = [{"label": label, "feed": feed, "path": observed_path(bundles[model], feed), "runs": []}
             for label, model, feed in CASES]
    for round_ in range(args.repeat):
        for case, (label, model, feed) in zip(cases, CASES):
            data = run_case(bundles[model], feed, args.seconds, args.threads)
            rows = {r["api"]: r for r in data["results"] if r["mode"] == "latency" and r["precision"] == "fp32"}
            bad = [r for r in rows.values() if r["status"] != "ok"]
            if set(rows) != set(APIS) or bad:
                sys.exit(f"{label}: rows missing or failed: {[(r['api'], r['status'], r['reason']) for r in bad]}")
            image = data["inputs"].get("image") or data["inputs"].get("noisy_spec")
            case.update(input="×".join(map(str, image["shape"])), settings=data["settings"])
            case["runs"].append(rows)
            print(f"round {round_ + 1} {label}: " + ", ".join(f"{api} {rows[api]['latency_ms']['p50']:.2f} ms"
                                                          for api in APIS), file=sys.stderr)
    result = {"machine": {**environment(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
              "repeat": args.repeat, "threads": args.threads, "seconds": args.seconds, "cases": cases}
    (RESULTS / "native_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    cpu = result["machine"]["cpu"]
    print(f"\n{cpu['model']}, {cpu['cores']} cores, OpenVINO {result['machine']['backends']['openvino']}, "
          f"{result['machine']['date']}, threads {args.threads or 'default'}, {args.repeat} rounds\n")
    print(table(cases))


if __name__ == "__main__":
    main()
