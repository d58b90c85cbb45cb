"""Training and evaluation of zoo:rbqe on the no-download demo data (edgekit.zoo.rbqe_data).

The loss is the paper's: a sum of per-exit MSEs whose weights depend on the quality factor, so easy
(high-QF) inputs are pushed to be enhanced well by the shallow exits and hard ones by the deep exits.
Optionally (`TrainConfig.gate_weight`) the exits are also taught where to stop: per patch, the oracle
exit is the first whose PSNR is within `gate_tolerance_db` of the best exit's; exits before it pay a hinge
for an IQAM score above threshold − margin, the oracle exit and later ones for a score below threshold +
margin. Without it the MSE-trained exits smooth fine grain away, IQAM (which scores grain) falls with
depth and the gate routes all-or-nothing between exits 1 and 5 (benchmarks/rbqe_quality.md, 2026-11-24).
`benchmarks/train_rbqe.py` drives this and writes the shipped checkpoint and the quality report.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from edgekit.zoo.rbqe_data import QUALITY_FACTORS, compressed_pairs, demo_images, jpeg_luma, psnr, resized_luma

# Per-exit loss weights at the extreme quality factors (from the paper); linear in QF in between.
WEIGHTS_QF50 = (2.0, 1.0, 1.0, 0.5, 0.5)
WEIGHTS_QF10 = (0.5, 0.5, 1.0, 1.0, 2.0)


def exit_weights(qf: int, levels: int = 5) -> list[float]:
    """Loss weight of each exit for JPEG quality `qf` (QF50 favours shallow exits, QF10 deep ones)."""
    t = min(max((50 - qf) / 40, 0.0), 1.0)
    weights = [(1 - t) * a + t * b for a, b in zip(WEIGHTS_QF50, WEIGHTS_QF10)]
    if levels != len(weights):  # resample the 5-exit profile onto another exit count
        positions = np.linspace(0, len(weights) - 1, levels)
        weights = list(np.interp(positions, np.arange(len(weights)), weights))
    return weights


@dataclass
class TrainConfig:
    steps: int = 1200
    batch: int = 8
    patch: int = 64  # multiple of 32 (five down-samplings) and of 8 (keeps the JPEG grid aligned)
    lr: float = 3e-3  # the paper uses 1e-4 for a long run; this budget is minutes
    lr_final: float = 1e-5
    seed: int = 0
    # The cosine schedule runs on max(step / steps, elapsed / budget): on a slower (or shared) machine
    # training stops at the budget with the learning rate still fully annealed.
    time_budget_s: float = 13 * 60
    online_jpeg: float = 0.0  # share of patches re-compressed on the fly (random scale and QF 10–50)
    gate_weight: float = 0.0  # weight of the IQAM gate hinge (0: the paper's loss alone)
    gate_threshold: float = 0.79  # the threshold the gate is taught around (the model's default)
    gate_margin: float = 0.03
    gate_tolerance_db: float = 0.05  # an exit within this of the best exit's PSNR is good enough


class PatchSampler:
    """Random grid-aligned crops (with flips/transposes) of compressed/clean luma pairs at random QFs.

    With `online_jpeg` > 0 that share of the patches is cut from a clean training photo at a random scale
    (1, 3/4 or 1/2), JPEG-compressed on the fly at an integer QF drawn from 10–50 (rbqe_data.jpeg_luma):
    unlimited pairs from 14 photos instead of 14 × 5 fixed ones.
    """

    SCALES = (1.0, 1.0, 0.75, 0.5)

    def __init__(self, split: str = "train", qfs=QUALITY_FACTORS, seed: int = 0, online_jpeg: float = 0.0):
        self.qfs = tuple(qfs)
        self.pairs = {qf: [(c, t) for _, c, t in compressed_pairs(qf, split)] for qf in self.qfs}
        self.clean = list(demo_images(split).values()) if online_jpeg > 0 else []
        self.online_jpeg = online_jpeg
        self.rng = np.random.default_rng(seed)

    def _online_pair(self, patch: int) -> tuple[np.ndarray, np.ndarray, int]:
        image = self.clean[self.rng.integers(len(self.clean))]
        scale = float(self.rng.choice(self.SCALES))
        side = min(int(round(patch / scale)), *image.shape)
        y = int(self.rng.integers(image.shape[0] - side + 1))
        x = int(self.rng.integers(image.shape[1] - side + 1))
        crop = image[y : y + side, x : x + side]
        if side != patch:
            crop = resized_luma(crop, patch)
        qf = int(self.rng.integers(min(self.qfs), max(self.qfs) + 1))
        comp, clean = jpeg_luma(crop, qf)
        return comp, clean, qf

    def batch(self, size: int, patch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs (B,1,P,P), targets (B,1,P,P), quality factors (B,))."""
        inputs, targets, qfs = [], [], []
        for _ in range(size):
            if self.online_jpeg > 0 and self.rng.random() < self.online_jpeg:
                a, b, qf = self._online_pair(patch)
            else:
                qf = int(self.rng.choice(self.qfs))
                comp, clean = self.pairs[qf][self.rng.integers(len(self.pairs[qf]))]
                y = 8 * self.rng.integers((comp.shape[0] - patch) // 8 + 1)
                x = 8 * self.rng.integers((comp.shape[1] - patch) // 8 + 1)
                a, b = comp[y : y + patch, x : x + patch], clean[y : y + patch, x : x + patch]
            k = self.rng.integers(8)  # the 8 symmetries of the square keep the 8×8 grid on the grid
            if k & 1:
                a, b = a[::-1], b[::-1]
            if k & 2:
                a, b = a[:, ::-1], b[:, ::-1]
            if k & 4:
                a, b = a.T, b.T
            inputs.append(np.ascontiguousarray(a))
            targets.append(np.ascontiguousarray(b))
            qfs.append(qf)
        as_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)[:, None])  # noqa: E731
        return as_tensor(inputs), as_tensor(targets), torch.tensor(qfs)


def near_identity_exits(model, scale: float = 0.1) -> None:
    """Shrink each exit's last conv so every exit starts close to the identity (output ≈ input).

    Not exactly zero: a zero last layer passes no gradient to the layers before it, and the run sat at
    ΔPSNR ≈ 0.00 dB after 13 minutes.
    """
    with torch.no_grad():
        for head in model.exits:
            head[-1].weight.mul_(scale)
            head[-1].bias.zero_()


def train_rbqe(model, config: TrainConfig, log=print) -> dict:
    """Train `model` in place with Adam and a cosine LR schedule; returns a summary dict."""
    torch.manual_seed(config.seed)
    model.train().requires_grad_(True)
    sampler = PatchSampler("train", seed=config.seed, online_jpeg=config.online_jpeg)
    qf_range = range(min(sampler.qfs), max(sampler.qfs) + 1)
    weight_table = {qf: torch.tensor(exit_weights(qf, model.levels)) for qf in qf_range}
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start = time.perf_counter()
    steps_done, running = 0, 0.0
    for step in range(config.steps):
        progress = max(step / config.steps, (time.perf_counter() - start) / config.time_budget_s)
        if progress >= 1.0:
            log(f"time budget reached after {step} of {config.steps} steps")
            break
        lr = config.lr_final + 0.5 * (config.lr - config.lr_final) * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, targets, qfs = sampler.batch(config.batch, config.patch)
        weights = torch.stack([weight_table[int(q)] for q in qfs])  # (B, exits)
        outputs = model.forward_all(inputs)
        per_exit = torch.stack([(o - targets).square().mean(dim=(1, 2, 3)) for o in outputs], dim=1)
        loss = (weights * per_exit).sum(1).mean()
        if config.gate_weight > 0:
            loss = loss + config.gate_weight * gate_loss(model, outputs, per_exit.detach(), config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps_done = step + 1
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 100 == 0 or step == config.steps - 1:
            log(f"step {step:5d}  loss {running:.3e}  lr {lr:.1e}  {time.perf_counter() - start:6.0f} s")
    model.eval().requires_grad_(False)
    return {"steps": steps_done, "seconds": round(time.perf_counter() - start, 1), "final_loss": running}


def oracle_exits(per_exit_mse: torch.Tensor, tolerance_db: float) -> torch.Tensor:
    """(B,) index of the first exit whose PSNR is within `tolerance_db` of the best exit's, from the
    per-exit MSEs (B, exits)."""
    psnr_db = -10.0 * torch.log10(per_exit_mse.clamp(min=1e-12))
    good = psnr_db >= psnr_db.max(dim=1, keepdim=True).values - tolerance_db
    return good.to(torch.int64).argmax(dim=1)


def gate_loss(model, outputs, per_exit_mse: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Hinge on the IQAM gate of exits 1..L−1: below threshold − margin before the oracle exit, above
    threshold + margin from it on (the last exit has no gate)."""
    oracle = oracle_exits(per_exit_mse, config.gate_tolerance_db)
    terms = []
    for k, out in enumerate(outputs[:-1]):
        score = model.quality(out)
        should_stop = (oracle <= k).to(score.dtype)
        high = torch.relu(config.gate_threshold + config.gate_margin - score)
        low = torch.relu(score - (config.gate_threshold - config.gate_margin))
        terms.append(should_stop * high + (1.0 - should_stop) * low)
    return torch.stack(terms, dim=1).sum(1).mean()


def first_passing_exit(scores: list[float], threshold: float) -> int:
    """The exit the model takes: the first of exits 0..L-2 whose IQAM score reaches `threshold`, else L-1."""
    for k, score in enumerate(scores[:-1]):
        if score >= threshold:
            return k
    return len(scores) - 1


@torch.no_grad()
def evaluate(model, threshold: float, split: str = "heldout", qfs=QUALITY_FACTORS) -> dict:
    """PSNR of input, every exit and the early-exit output per QF; exit histogram at `threshold`."""
    model.eval()
    report: dict = {"per_qf": {}, "exit_histogram": [0] * model.levels}
    for qf in qfs:
        rows = []
        for name, comp, clean in compressed_pairs(qf, split):
            outputs = model.forward_all(torch.from_numpy(comp)[None, None])
            scores = [float(model.quality(o)) for o in outputs]
            chosen = first_passing_exit(scores, threshold)
            exits = [psnr(o[0, 0].clamp(0, 1).numpy(), clean) for o in outputs]
            report["exit_histogram"][chosen] += 1
            rows.append({"image": name, "psnr_in": psnr(comp, clean), "psnr_exits": exits,
                         "exit": chosen, "psnr_out": exits[chosen], "iqam": scores})  # fmt: skip
        mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
        report["per_qf"][str(qf)] = {
            "psnr_in": mean("psnr_in"),
            "psnr_out": mean("psnr_out"),
            "delta_psnr": mean("psnr_out") - mean("psnr_in"),
            "delta_psnr_per_exit": [float(np.mean([r["psnr_exits"][k] - r["psnr_in"] for r in rows]))
                                    for k in range(model.levels)],  # fmt: skip
            "images": rows,
        }
    return report
