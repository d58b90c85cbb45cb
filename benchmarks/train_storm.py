"""Train zoo:storm on the committed espeak-ng mixtures (edgekit/zoo/storm_data.py) for a wall-clock budget
and write the shipped checkpoint edgekit/zoo/weights/storm_nf16.pt plus benchmarks/results/storm_train.json.

Joint loss (StoRM §III-C): 0.5·MSE(D(y), x) + 0.5·DSM, where DSM = mean |s(x_t, [y, D(y)], t)·std(t) + z|²,
x_t = mean_t(x, D(y)) + std(t)·z, t ~ U(t_eps, 1). D(y) is detached inside the DSM term (our choice: the
predictive model learns from its own MSE only, which is more stable in a short run). Adam, lr 1e-3 with
a cosine decay to 1e-4 over the time budget (the paper's 1e-4 is far too slow for a 20-minute CPU run).

    python benchmarks/train_storm.py --minutes 20 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from edgekit.zoo import storm_data as data
from edgekit.zoo.storm import DEFAULT_WEIGHTS, StoRM
from edgekit.zoo.storm_metrics import si_sdr
from edgekit.zoo.storm_train import batch, joint_loss

ROOT = Path(__file__).parents[1]


def quick_eval(model: StoRM, count: int, steps: int) -> dict:
    noisy, pred, sampled = [], [], []
    for i, m in enumerate(data.heldout_mixtures(count)):
        noisy.append(si_sdr(m.clean, m.noisy))
        pred.append(si_sdr(m.clean, model.predict_wave(m.noisy).numpy()))
        if i < count // 2:
            sampled.append(si_sdr(m.clean, model.enhance(m.noisy, steps, seed=i).numpy()) - noisy[-1])
    return {"noisy_si_sdr": float(np.mean(noisy)), "predictive_si_sdr": float(np.mean(pred)),
            "predictive_gain_db": float(np.mean(pred) - np.mean(noisy)),
            f"sampler_n{steps}_gain_db_first_half": float(np.mean(sampled))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--nf", type=int, default=16)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-min", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = StoRM(nf=args.nf, levels=args.levels)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    budget = args.minutes * 60.0
    start = time.time()
    step, history = 0, []
    while (elapsed := time.time() - start) < budget:
        lr = args.lr_min + 0.5 * (args.lr - args.lr_min) * (1 + math.cos(math.pi * elapsed / budget))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = batch(rng, args.batch, args.frames, model.beta)
        loss, sup, dsm = joint_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        history.append((sup.item(), dsm.item()))
        step += 1
        if step % 25 == 0:
            s, d = np.mean(history[-25:], axis=0)
            print(f"step {step} {elapsed / 60:.1f} min lr {lr:.2e} mse {s:.5f} dsm {d:.4f}", flush=True)
    train_minutes = (time.time() - start) / 60
    model.eval()
    config = {"nf": args.nf, "levels": args.levels, "beta": model.beta}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": config, "state_dict": model.state_dict(),
                "meta": {"steps": step, "train_minutes": round(train_minutes, 2), "batch": args.batch,
                         "frames": args.frames, "lr": args.lr, "threads": args.threads}}, args.out)
    print(f"saved {args.out} after {step} steps, {train_minutes:.1f} min", flush=True)
    with torch.no_grad():
        summary = quick_eval(model, 8, 10)
    summary.update(steps=step, train_minutes=round(train_minutes, 2), config=config,
                   params={"predictive": sum(p.numel() for p in model.predictive.parameters()),
                           "score": sum(p.numel() for p in model.score_net.parameters())},
                   final_mse=float(np.mean([h[0] for h in history[-50:]])),
                   final_dsm=float(np.mean([h[1] for h in history[-50:]])), args=vars(args) | {"out": str(args.out)})
    print(json.dumps(summary, indent=2), flush=True)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "storm_train.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
