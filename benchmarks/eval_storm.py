"""Evaluate zoo:storm (the shipped checkpoint) on the held-out espeak-ng mixtures: SI-SDR, wide-band
PESQ and ESTOI for the noisy input, the predictive model alone and the sampler with
N ∈ {1, 5, 10, 20, 30, 50}; writes benchmarks/results/storm_quality.json and benchmarks/storm_quality.md.

    pip install pesq pystoi
    python benchmarks/eval_storm.py [--mixtures 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from edgekit.zoo import storm_data as data
from edgekit.zoo.storm import build_storm
from edgekit.zoo.storm_metrics import estoi, pesq_wb, si_sdr

ROOT = Path(__file__).parents[1]
STEPS = (1, 5, 10, 20, 30, 50)
DATE = "2026-11-24"


def scores(clean: np.ndarray, estimate: np.ndarray) -> dict:
    return {"si_sdr": si_sdr(clean, estimate), "pesq_wb": pesq_wb(clean, estimate), "estoi": estoi(clean, estimate)}


def mean_of(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def evaluate(model, mixtures) -> dict:
    systems: dict[str, dict] = {}

    def record(name: str, nfe: int, fn):
        rows, seconds, audio_s = [], 0.0, 0.0
        for i, m in enumerate(mixtures):
            start = time.perf_counter()
            estimate = fn(i, m)
            seconds += time.perf_counter() - start
            audio_s += len(m.clean) / data.SAMPLE_RATE
            rows.append(scores(m.clean, estimate))
        systems[name] = {"nfe": nfe, "rtf": seconds / audio_s if nfe else 0.0, **mean_of(rows),
                         "per_mixture": rows}
        print(f"{name:>12}: " + "  ".join(f"{k} {v:.3f}" for k, v in mean_of(rows).items()), flush=True)

    record("noisy", 0, lambda i, m: m.noisy)
    with torch.no_grad():
        record("predictive", 1, lambda i, m: model.predict_wave(m.noisy).numpy())
        for n in STEPS:
            # NFE: one predictive pass plus two score passes (corrector + predictor) per step
            record(f"N={n}", 1 + 2 * n, lambda i, m, n=n: model.enhance(m.noisy, n, seed=i).numpy())
    return systems


def markdown(result: dict) -> str:
    systems = result["systems"]
    ref = systems["N=50"]["nfe"]
    lines = [
        "# zoo:storm quality vs. step count",
        "",
        f"{DATE} · {result['machine']} · torch {result['torch']} · {result['threads']} thread(s) · "
        f"checkpoint `{result['checkpoint']}` ({result['params_total']:,} parameters: predictive "
        f"{result['params']['predictive']:,}, score {result['params']['score']:,}; trained "
        f"{result['train'].get('train_minutes', '?')} min, {result['train'].get('steps', '?')} steps)",
        "",
        f"{len(result['mixtures'])} held-out mixtures (8 espeak-ng utterances never seen in training; white, pink "
        "and babble noise; input SNR −5…15 dB). Sampler noise seeded per mixture. NFE = network evaluations "
        "(1 predictive + 2 score per step). RTF = wall time / audio duration on this CPU; the box was "
        "shared with other jobs during the run (load average ≈ 4 on 2 cores), so RTF is noisy; NFE is the "
        "reliable compute measure.",
        "",
        "| system | NFE | compute vs N=50 | SI-SDR (dB) | PESQ-WB | ESTOI | RTF |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in systems.items():
        ratio = f"{s['nfe'] / ref:.2f}×" if s["nfe"] else "–"
        lines.append(f"| {name} | {s['nfe']} | {ratio} | {s['si_sdr']:.2f} | {s['pesq_wb']:.2f} | "
                     f"{s['estoi']:.3f} | {s['rtf']:.2f} |")
    lines += ["", "## Against the paper", "", result["verdict"], ""]
    return "\n".join(lines)


def verdict(systems: dict) -> str:
    n20, n50, pred, noisy = systems["N=20"], systems["N=50"], systems["predictive"], systems["noisy"]
    best = max((k for k in systems if k.startswith("N=")), key=lambda k: systems[k]["si_sdr"])
    return (
        "StoRM (Lemercier et al., TASLP 2023) claims that, thanks to the predictive model's head start, its "
        "quality holds down to about N≈20 reverse steps, an order-of-magnitude compute reduction against "
        "a plain score-based model. On this tiny, briefly trained CPU model: N=20 vs N=50 differs by "
        f"{n20['si_sdr'] - n50['si_sdr']:+.2f} dB SI-SDR, {n20['pesq_wb'] - n50['pesq_wb']:+.2f} PESQ and "
        f"{n20['estoi'] - n50['estoi']:+.3f} ESTOI at {n20['nfe'] / n50['nfe']:.2f}× the compute; the best "
        f"sampler setting by SI-SDR is {best}. Against the noisy input the predictive model alone gains "
        f"{pred['si_sdr'] - noisy['si_sdr']:+.2f} dB SI-SDR and the N=20 sampler "
        f"{n20['si_sdr'] - noisy['si_sdr']:+.2f} dB. The collapse at N ≤ 5 (N=1: {systems['N=1']['si_sdr']:.1f} dB, "
        f"N=5: {systems['N=5']['si_sdr']:.1f} dB) comes from the sampler as specified: with dt = (1 − t_eps)/(N − 1) "
        "the reverse-diffusion (Euler–Maruyama) predictor's g(t)²·dt·s term overshoots when g(t)²·dt ≫ std(t)² "
        "(≈ 7× at N = 1, t = 1). The gap between the sampler and the predictive model alone "
        f"({n20['si_sdr'] - pred['si_sdr']:+.2f} dB SI-SDR, {n20['pesq_wb'] - pred['pesq_wb']:+.2f} PESQ at N=20) "
        "most likely reflects a score model trained for 20 minutes on ~75 s of synthetic speech, not the paper's "
        "27.8 M-parameter networks trained on WSJ0+CHiME3 / VB-DMD; absolute numbers are not comparable "
        "with the paper's."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixtures", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default="default")
    parser.add_argument("--render-only", action="store_true",
                        help="re-write storm_quality.md from the existing results JSON")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results"
    if args.render_only:
        result = json.loads((out / "storm_quality.json").read_text())
        result["verdict"] = verdict(result["systems"])
        (out / "storm_quality.json").write_text(json.dumps(result, indent=2) + "\n")
        (ROOT / "benchmarks" / "storm_quality.md").write_text(markdown(result))
        return
    torch.set_num_threads(args.threads)
    model = build_storm(weights=args.weights)
    mixtures = data.heldout_mixtures(args.mixtures)
    systems = evaluate(model, mixtures)
    checkpoint = torch.load(model_path(args.weights), map_location="cpu", weights_only=True)
    params = {"predictive": sum(p.numel() for p in model.predictive.parameters()),
              "score": sum(p.numel() for p in model.score_net.parameters())}
    result = {
        "date": DATE, "machine": f"{platform.machine()} CPU, {torch.get_num_threads()}-core budget (2-core box)",
        "torch": torch.__version__, "threads": args.threads,
        "checkpoint": str(model_path(args.weights).relative_to(ROOT)) if args.weights == "default" else args.weights,
        "config": checkpoint["config"], "train": checkpoint.get("meta", {}),
        "params": params, "params_total": sum(params.values()),
        "mixtures": [{"utterance": m.utterance, "kind": m.kind, "snr_db": m.snr_db} for m in mixtures],
        "systems": systems,
    }
    result["verdict"] = verdict(systems)
    out.mkdir(parents=True, exist_ok=True)
    (out / "storm_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    (ROOT / "benchmarks" / "storm_quality.md").write_text(markdown(result))
    print(result["verdict"])


def model_path(weights: str) -> Path:
    from edgekit.zoo.storm import DEFAULT_WEIGHTS

    return DEFAULT_WEIGHTS if weights == "default" else Path(weights)


if __name__ == "__main__":
    main()
