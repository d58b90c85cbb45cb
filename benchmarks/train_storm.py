"""Train zoo:storm on the committed espeak-ng mixtures (edgekit/zoo/storm_data.py) for a wall-clock budget
and write the shipped checkpoint edgekit/zoo/weights/storm_nf16.pt plus benchmarks/results/storm_train.json.

Joint loss (StoRM §III-C): 0.5·MSE(D(y), x) + 0.5·DSM, where DSM = mean |s(x_t, [y, D(y)], t)·std(t) + z|²,
x_t = mean_t(x, D(y)) + std(t)·z, t ~ U(t_eps, 1). D(y) is detached inside the DSM term (our choice: the
predictive model learns from its own MSE only, which is more stable in a short run). Adam, lr 1e-3 with
a cosine decay to 1e-4 over the time budget (the paper's 1e-4 is far too slow for a 20-minute CPU run).

Budget: at most 45 minutes wall on one thread of the 2-core box per run (issue #18: ≤ ~60 minutes per
model in all). `--init` continues from a checkpoint (its `meta.train_minutes` is added to the total),
`--freeze-predictive` trains the score model alone (half the backward cost; D(y) stays as shipped), and
`--ema` keeps an exponential moving average of the weights, which is what is saved (sgmse/StoRM sample
with EMA weights too). Write candidates elsewhere with `--out` and ship them only if eval_storm.py says
they are better on the held-out mixtures.

    python benchmarks/train_storm.py --minutes 20 --threads 1
    python benchmarks/train_storm.py --minutes 40 --init edgekit/zoo/weights/storm_nf16.pt \
        --freeze-predictive --lr 5e-4 --lr-min 5e-5 --ema 0.995 --out /tmp/storm_candidate.pt
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
    parser.add_argument("--init", type=Path, default=None, help="continue from this checkpoint")
    parser.add_argument("--freeze-predictive", action="store_true", help="train the score model only")
    parser.add_argument("--ema", type=float, default=0.0, help="EMA decay of the saved weights (0: off)")
    parser.add_argument("--quick-eval-steps", type=int, default=10, help="N of the quick check (0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = StoRM(nf=args.nf, levels=args.levels)
    prior_minutes, prior_steps = 0.0, 0
    if args.init is not None:
        checkpoint = torch.load(args.init, map_location="cpu", weights_only=True)
        model.load_state_dict(checkpoint["state_dict"])
        prior_minutes = float(checkpoint.get("meta", {}).get("train_minutes", 0.0))
        prior_steps = int(checkpoint.get("meta", {}).get("steps", 0))
    if args.freeze_predictive:
        model.predictive.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if args.ema > 0 else None
    opt = torch.optim.Adam(trainable, lr=args.lr)
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
        torch.nn.utils.clip_grad_norm_(trainable, 5.0)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    if v.dtype.is_floating_point:
                        ema[k].mul_(args.ema).add_(v, alpha=1.0 - args.ema)
        history.append((sup.item(), dsm.item()))
        step += 1
        if step % 25 == 0:
            s, d = np.mean(history[-25:], axis=0)
            print(f"step {step} {elapsed / 60:.1f} min lr {lr:.2e} mse {s:.5f} dsm {d:.4f}", flush=True)
    run_minutes = (time.time() - start) / 60
    train_minutes = prior_minutes + run_minutes
    if ema is not None:
        model.load_state_dict(ema)
    model.eval()
    config = {"nf": args.nf, "levels": args.levels, "beta": model.beta}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"steps": prior_steps + step, "train_minutes": round(train_minutes, 2), "batch": args.batch,
            "frames": args.frames, "lr": args.lr, "threads": args.threads}
    if args.init is not None:
        meta |= {"continued_from": {"steps": prior_steps, "train_minutes": round(prior_minutes, 2)},
                 "run_steps": step, "run_minutes": round(run_minutes, 2), "lr_min": args.lr_min,
                 "freeze_predictive": args.freeze_predictive, "ema": args.ema}
    torch.save({"config": config, "state_dict": model.state_dict(), "meta": meta}, args.out)
    print(f"saved {args.out} after {step} steps, {run_minutes:.1f} min", flush=True)
    summary = {}
    if args.quick_eval_steps:
        with torch.no_grad():
            summary = quick_eval(model, 8, args.quick_eval_steps)
    summary.update(steps=prior_steps + step, train_minutes=round(train_minutes, 2), meta=meta, config=config,
                   params={"predictive": sum(p.numel() for p in model.predictive.parameters()),
                           "score": sum(p.numel() for p in model.score_net.parameters())},
                   final_mse=float(np.mean([h[0] for h in history[-50:]])),
                   final_dsm=float(np.mean([h[1] for h in history[-50:]])),
                   args=vars(args) | {"out": str(args.out), "init": str(args.init)})
    print(json.dumps(summary, indent=2), flush=True)
    # the shipped checkpoint's record goes to results/; a candidate's sits next to it until shipped
    if args.out.resolve() == DEFAULT_WEIGHTS.resolve():
        record = ROOT / "benchmarks" / "results" / "storm_train.json"
    else:
        record = args.out.with_suffix(".json")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
