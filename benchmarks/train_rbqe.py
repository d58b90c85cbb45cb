"""Train zoo:rbqe on the scikit-image demo photos (JPEG QF 10–50), ship the checkpoint, write the report.

    python benchmarks/train_rbqe.py                 # train (~13 min, 1 thread), evaluate, write results
    python benchmarks/train_rbqe.py --eval-only     # re-evaluate the shipped checkpoint

Outputs: edgekit/zoo/weights/rbqe_jpeg_w32.pt, benchmarks/results/rbqe_quality.json,
benchmarks/rbqe_quality.md. Runs on one thread: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekit.zoo.rbqe import SHIPPED_WEIGHTS, build_rbqe, exit_macs  # noqa: E402
from edgekit.zoo.rbqe_train import (  # noqa: E402
    TrainConfig,
    evaluate,
    first_passing_exit,
    near_identity_exits,
    train_rbqe,
)

PAPER_GMAC_512 = [10.2, 14.7, 18.7, 22.9, 27.6]  # Xing et al. 2020, per exit at 512×512
RESULTS = ROOT / "benchmarks" / "results" / "rbqe_quality.json"
REPORT = ROOT / "benchmarks" / "rbqe_quality.md"
DATE, MACHINE = "2026-11-24", "2-core CPU (shared), torch 2.13.0 CPU, 1 thread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--minutes", type=float, default=TrainConfig.time_budget_s / 60)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    args = parser.parse_args()
    torch.set_num_threads(1)
    weights_path = SHIPPED_WEIGHTS[("jpeg", 32, 5)]
    if args.render_only:
        REPORT.write_text(render(json.loads(RESULTS.read_text())))
        return

    if args.eval_only:
        model = build_rbqe()
        training = json.loads(RESULTS.read_text())["training"] if RESULTS.exists() else None
    else:
        model = build_rbqe(weights="none")
        near_identity_exits(model)
        config = TrainConfig(steps=args.steps, lr=args.lr, time_budget_s=args.minutes * 60)
        training = train_rbqe(model, config, log=lambda line: print(line, flush=True))
        training.update(batch=config.batch, patch=config.patch, lr=config.lr, lr_final=config.lr_final,
                        optimizer="Adam, cosine schedule", threads=1)  # fmt: skip
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, weights_path)
        print(f"saved {weights_path} ({weights_path.stat().st_size / 1e6:.2f} MB)", flush=True)

    start = time.perf_counter()
    quality = evaluate(model, threshold=model.threshold)
    macs = exit_macs(model, 512, 512)
    results = {
        "date": DATE,
        "machine": MACHINE,
        "model": {"spec": "zoo:rbqe", "width": model.width, "levels": model.levels,
                  "params": sum(p.numel() for p in model.parameters())},  # fmt: skip
        "training": training,
        "threshold": model.threshold,
        "exit_histogram": quality["exit_histogram"],
        "per_qf": quality["per_qf"],
        "gmac_512": {"edgekit": [round(m / 1e9, 2) for m in macs], "paper": PAPER_GMAC_512},
        "threshold_sweep": threshold_sweep(quality, macs),
        "eval_seconds": round(time.perf_counter() - start, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    REPORT.write_text(render(results))
    print(render(results))


def threshold_sweep(quality: dict, macs: list[int], thresholds=(0.3, 0.4, 0.5, 0.6, 0.7, 0.79)) -> list:
    """Exit histogram, mean ΔPSNR and mean GMAC (512²) per threshold, from the stored per-exit results."""
    rows = [row for per_qf in quality["per_qf"].values() for row in per_qf["images"]]
    sweep = []
    for threshold in thresholds:
        exits = [first_passing_exit(row["iqam"], threshold) for row in rows]
        gains = [row["psnr_exits"][k] - row["psnr_in"] for row, k in zip(rows, exits)]
        sweep.append({"threshold": threshold, "exit_histogram": [exits.count(k) for k in range(len(macs))],
                      "mean_delta_psnr": sum(gains) / len(gains),
                      "mean_gmac_512": sum(macs[k] for k in exits) / len(exits) / 1e9})  # fmt: skip
    return sweep


def render(r: dict) -> str:
    t = r["training"] or {}
    lines = [
        "## RBQE on JPEG: quality, exits and cost",
        "",
        f"{r['date']} · {r['machine']} · `zoo:rbqe` width {r['model']['width']}, "
        f"{r['model']['params'] / 1e6:.3f} M parameters.",
        f"Trained from scratch on 14 scikit-image demo photos (luma, Pillow JPEG QF 10–50, 64 px patches): "
        f"{t.get('steps', '?')} Adam steps, batch {t.get('batch', '?')}, lr {t.get('lr', '?')} → "
        f"{t.get('lr_final', '?')} cosine, {t.get('seconds', 0) / 60:.1f} min on "
        f"{t.get('threads', '?')} thread. Evaluated on 5 held-out photos (camera, chelsea, coins, gravel, rocket), full size.",
        "",
        f"| QF | PSNR in (dB) | PSNR out, threshold {r['threshold']} | ΔPSNR | ΔPSNR exit 1…5 |",
        "|---:|---:|---:|---:|:--|",
    ]
    for qf, row in r["per_qf"].items():
        per_exit = " / ".join(f"{d:+.2f}" for d in row["delta_psnr_per_exit"])
        lines.append(
            f"| {qf} | {row['psnr_in']:.2f} | {row['psnr_out']:.2f} | {row['delta_psnr']:+.2f} | {per_exit} |"
        )
    hist = r["exit_histogram"]
    gm = r["gmac_512"]
    lines += [
        "",
        f"Exits taken at threshold {r['threshold']} (25 held-out images × QFs): "
        + ", ".join(f"exit {k + 1}: {n}" for k, n in enumerate(hist)) + ".",
        "",
        "| GMAC at 512×512 | exit 1 | exit 2 | exit 3 | exit 4 | exit 5 |",
        "|---|---:|---:|---:|---:|---:|",
        "| edgekit (convolutions) | " + " | ".join(f"{v:.1f}" for v in gm["edgekit"]) + " |",
        "| paper | " + " | ".join(f"{v:.1f}" for v in gm["paper"]) + " |",
        "",
        "| threshold | exits 1…5 taken | mean ΔPSNR (dB) | mean GMAC at 512² |",
        "|---:|:--|---:|---:|",
    ]
    for row in r["threshold_sweep"]:
        lines.append(f"| {row['threshold']} | {' / '.join(map(str, row['exit_histogram']))} | "
                     f"{row['mean_delta_psnr']:+.2f} | {row['mean_gmac_512']:.1f} |")  # fmt: skip
    middle = sum(sum(row["exit_histogram"][1:-1]) for row in r["threshold_sweep"])
    qf50 = r["per_qf"]["50"]["delta_psnr_per_exit"]
    ratio = [ours / paper for ours, paper in zip(gm["edgekit"], gm["paper"])]
    lines += [
        "",
        "Notes:",
        f"- Every QF gains, but the early exits barely route: exits 2–4 are taken {middle} times over the "
        "whole threshold sweep. On these outputs IQAM falls with depth (deeper exits smooth more, and IQAM scores "
        "smooth patches by their high-order moment energy), so the first exit to pass is exit 1 or none. At "
        f"0.79 the mean cost is {r['threshold_sweep'][-1]['mean_gmac_512']:.1f} GMAC against "
        f"{gm['edgekit'][-1]:.1f} for always running exit 5: little saved. The paper's model, trained far "
        f"longer on RAISE, does not behave like this; ours trained {t.get('seconds', 0) / 60:.0f} minutes "
        "on 14 photos.",
        f"- With light compression the shallow exits are the better ones (QF 50: exit 1 {qf50[0]:+.2f} dB, "
        f"exit 5 {qf50[-1]:+.2f} dB), as the QF-dependent loss weights intend; a lower threshold takes them "
        "and gains both quality and compute (see the sweep).",
        f"- MACs count convolutions only (ECA and IQAM excluded): {ratio[0]:.0%}–{ratio[-1]:.0%} of the "
        "paper's figures, further below with depth; the paper does not say what its count includes.",
        "- Departures from the paper: the ECA on the lower edge gates it after the transposed conv (one "
        "grouped ECA per node, for export time), no depthwise-conv biases, He init, and Adam at lr 3e-3 "
        "(paper: 1e-4) to learn anything within the 15-minute budget.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
