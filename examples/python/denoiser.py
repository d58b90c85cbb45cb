"""A small DDPM-style denoiser built with `edgekit.flow.sampler`: an ε-prediction conv net, run for a
run-time number of reverse-diffusion steps N (input `num_steps`) inside one `while_loop` (→ one ONNX `Loop`).

    python examples/python/denoiser.py --seconds 60      # train, print PSNR per N
    edgekit export examples/python/denoiser.py:build --target onnx --target openvino --out bundles/denoiser

Task: the input is a noisy image at diffusion time T_START of a variance-preserving cosine schedule,
x = √ᾱ·clean + √(1−ᾱ)·ε (σ ≈ 1 relative to the image, clean ∈ [−1, 1]); N DDIM steps with η = ETA
(ancestral noise from the `noise` input, so a run is deterministic for a given noise) go from T_START to 0.
Data (generated here): 16×16 images of 1 to 3 soft-edged rectangles and discs on a flat background.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from edgekit.flow import Sampler, sampler
from edgekit.flow.threads import one_thread

SIZE, MAX_STEPS, T_START, ETA = 16, 8, 0.5, 0.5
WEIGHTS = Path(__file__).with_name("denoiser.pt")
QUICK_STEPS = 30  # build() without saved weights


def make_images(count: int, seed: int) -> torch.Tensor:
    """[count, 1, 16, 16] in [−1, 1]: 1–3 shapes (rectangle or disc) of random level on a random level."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    images = torch.empty(count, 1, SIZE, SIZE).uniform_(-0.8, 0.0, generator=g)
    for _ in range(3):
        present = (torch.rand(count, generator=g) < 0.7).float()[:, None, None]
        cy, cx = SIZE * torch.rand(2, count, generator=g)
        r = 2.0 + SIZE / 3 * torch.rand(count, generator=g)
        disc = torch.rand(count, generator=g) < 0.5
        dist = torch.where(disc[:, None, None], torch.hypot(yy - cy[:, None, None], xx - cx[:, None, None]),
                           torch.maximum((yy - cy[:, None, None]).abs(), (xx - cx[:, None, None]).abs()))
        mask = torch.sigmoid(2.0 * (r[:, None, None] - dist)) * present
        level = torch.empty(count).uniform_(0.2, 1.0, generator=g)
        images = images * (1 - mask[:, None]) + level[:, None, None, None] * mask[:, None]
    return images


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule ᾱ(t), t ∈ [0, 1] (Nichol & Dhariwal 2021); ᾱ(0) = 1."""
    s = 0.008
    return (torch.cos((t + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)) ** 2


def noisy_from_clean(clean: torch.Tensor, seed: int) -> torch.Tensor:
    """The sampler's input: the clean image diffused to T_START."""
    g = torch.Generator().manual_seed(seed)
    ab = alpha_bar(torch.tensor(T_START))
    return ab.sqrt() * clean + (1 - ab).sqrt() * torch.randn(clean.shape, generator=g)


class EpsNet(nn.Module):
    """ε(x_t, t): four 3×3 convs with the time added per channel (sinusoidal embedding → linear)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), 8)))
        self.time = nn.Linear(16, width)
        self.inp = nn.Conv2d(1, width, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(3))
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t.reshape(-1, 1) * self.freqs  # [B or 1, 8]: t may be one scalar for the whole batch
        emb = self.time(torch.cat([angles.sin(), angles.cos()], dim=1))[:, :, None, None]
        h = torch.relu(self.inp(x) + emb)
        for conv in self.body:
            h = h + torch.relu(conv(h))
        return self.out(h)


class DdimStep(nn.Module):
    """One reverse step t → s of N from T_START to 0 (DDIM with η; the last step returns the x̂0 estimate)."""

    def __init__(self, net: EpsNet, eta: float = ETA):
        super().__init__()
        self.net, self.eta = net, eta

    def forward(self, x, i, n, z):
        # the schedule from tensor ops on i and n (DESIGN.md §6): one Loop body for every N
        t = T_START * (1.0 - i.to(torch.float32) / n.to(torch.float32))
        s = T_START * (1.0 - (i + 1).to(torch.float32) / n.to(torch.float32))
        ab_t, ab_s = alpha_bar(t), alpha_bar(s)
        eps = self.net(x, t)
        x0 = ((x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()).clamp(-1.5, 1.5)
        sigma = self.eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)).clamp(min=0.0).sqrt()
        eps = (x - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()  # ε consistent with the clamped x̂0
        return ab_s.sqrt() * x0 + (1 - ab_s - sigma**2).clamp(min=0.0).sqrt() * eps + sigma * z


def build_untrained(width: int = 32, seed: int = 0) -> Sampler:
    """The untrained denoiser: DdimStep(EpsNet) in a sampler with max_steps 8."""
    torch.manual_seed(seed)
    example = noisy_from_clean(make_images(1, seed=1), seed=2)
    return sampler(DdimStep(EpsNet(width)), max_steps=MAX_STEPS, noise_shape=tuple(example.shape),
                   example_input=example)


def build() -> Sampler:
    """The sampler `edgekit export` takes: the weights `python denoiser.py` saved beside this file, else a
    quick deterministic training (QUICK_STEPS steps, seconds)."""
    if not WEIGHTS.is_file():
        return train(math.inf, steps_limit=QUICK_STEPS, eval_count=0)[0]
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    model = build_untrained(width=state["width"])
    model.load_state_dict(state["model"])
    return model.frozen()


def train(seconds: float, width: int = 32, batch: int = 64, seed: int = 0,
          steps_limit: int | None = None, eval_count: int = 64) -> tuple[Sampler, dict]:
    """Train ε-prediction (MSE, t ~ U(0, T_START]) for `seconds` (or `steps_limit` optimizer steps,
    whichever comes first); returns the frozen sampler and its report:
    PSNR against the clean images of the noisy input (rescaled by 1/√ᾱ) and of the output per N."""
    model = build_untrained(width, seed)
    net = model.step_module.net.train().requires_grad_(True)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    start, steps = time.monotonic(), 0
    with one_thread():
        while (time.monotonic() - start < seconds or steps == 0) and (steps_limit is None or steps < steps_limit):
            clean = make_images(batch, seed=1000 + steps)
            g = torch.Generator().manual_seed(10_000 + steps)
            t = T_START * (1 - torch.rand(batch, generator=g))
            eps = torch.randn(clean.shape, generator=g)
            ab = alpha_bar(t)[:, None, None, None]
            loss = nn.functional.mse_loss(net(ab.sqrt() * clean + (1 - ab).sqrt() * eps, t), eps)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        model.frozen()
        report = evaluate(model, make_images(eval_count, seed=7)) if eval_count else {}
    report.update(train_seconds=round(time.monotonic() - start, 1), train_steps=steps, width=width)
    return model, report


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB for images in [−1, 1] (peak-to-peak 2)."""
    return float(10 * torch.log10(4.0 / ((x - ref) ** 2).mean()))


@torch.no_grad()
def evaluate(model: Sampler, clean: torch.Tensor) -> dict:
    noisy = noisy_from_clean(clean, seed=8)
    results = {"samples": len(clean), "psnr_noisy_db": round(psnr(noisy / alpha_bar(torch.tensor(T_START)).sqrt(),
                                                                     clean), 2), "psnr_per_steps_db": {}}
    for n in sorted({1, 2, MAX_STEPS // 2, MAX_STEPS}):
        out = torch.cat([model.sample(noisy[k:k + 1], n, seed=k) for k in range(len(clean))])
        results["psnr_per_steps_db"][n] = round(psnr(out, clean), 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--save", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    model, report = train(args.seconds, args.width)
    torch.save({"model": model.state_dict(), "width": args.width}, args.save)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
