"""BranchyNet-style classifier built with `edgekit.flow.exit_chain`: three ResNet stages, an exit after each,
max-softmax confidence deciding in the graph (nested `If`) whether to go deeper.

    python examples/python/branchy.py --seconds 60       # train, print exit histogram + accuracy per exit
    edgekit export examples/python/branchy.py:build --target onnx --target openvino --out bundles/branchy

Data (generated here): 16×16 RGB stripes in 4 orientations under per-image noise of random strength, so
clean images are easy (exit 0) and noisy ones need the deeper, wider stages.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from edgekit.flow import ExitChain, exit_chain, max_softmax
from edgekit.flow.threads import one_thread

CLASSES, SIZE = 4, 16
WEIGHTS = Path(__file__).with_name("branchy.pt")
QUICK_STEPS = 100  # build() without saved weights


def make_data(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [count, 3, 16, 16], labels [count]): stripes at 0°, 45°, 90° or 135°, random frequency,
    phase and colour, plus Gaussian noise with σ ∈ [0.5, 5] per image."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (count,), generator=g)
    angle = labels.float() * math.pi / CLASSES
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    freq = 0.6 + 0.8 * torch.rand(count, generator=g)
    phase = 2 * math.pi * torch.rand(count, generator=g)
    along = xx[None] * torch.cos(angle)[:, None, None] + yy[None] * torch.sin(angle)[:, None, None]
    stripes = torch.sin(freq[:, None, None] * along + phase[:, None, None])
    colour = 0.3 + 0.7 * torch.rand(count, 3, generator=g)
    sigma = 0.5 + 4.5 * torch.rand(count, generator=g)
    images = colour[:, :, None, None] * stripes[:, None] + sigma[:, None, None, None] * torch.randn(
        count, 3, SIZE, SIZE, generator=g)
    return images, labels


class ResBlock(nn.Module):
    """conv-BN-ReLU-conv-BN + (projected) skip, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


def _head(width: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, CLASSES))


def build_untrained(width: int = 16, threshold: float = 0.9, seed: int = 0) -> ExitChain:
    """The untrained chain: stem + ResBlock (exit 0), ResBlock ↓2 (exit 1), ResBlock ↓2 (exit 2)."""
    torch.manual_seed(seed)
    stages = [nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                            ResBlock(width, width)),
              ResBlock(width, 2 * width, stride=2),
              ResBlock(2 * width, 4 * width, stride=2)]
    heads = [_head(width), _head(2 * width), _head(4 * width)]
    probes, _ = make_data(32, seed=1)  # real inputs to plant the validation thresholds with
    return exit_chain(stages, heads, max_softmax, example_input=probes[:1], threshold=threshold,
                      probe_inputs=list(probes.split(1)))


def build() -> ExitChain:
    """The chain `edgekit export` takes: the weights `python branchy.py` saved beside this file, else a quick
    deterministic training (QUICK_STEPS steps, seconds). Untrained, the deeper exits are never more
    confident than exit 0, so no threshold reaches them and validation could not cover them."""
    if not WEIGHTS.is_file():
        return train(math.inf, steps_limit=QUICK_STEPS, eval_count=0)[0]
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    model = build_untrained(width=state["width"], threshold=state["threshold"])
    model.load_state_dict(state["model"])
    return model.frozen()


def train(seconds: float, width: int = 16, threshold: float = 0.9, batch: int = 64, seed: int = 0,
          steps_limit: int | None = None, eval_count: int = 1024) -> tuple[ExitChain, dict]:
    """Train every exit at once (sum of the exits' cross-entropies, BranchyNet) for `seconds` or `steps_limit`
    optimizer steps, whichever ends first; returns the frozen chain and its report on held-out data at
    `threshold` (exit histogram, accuracy per exit)."""
    model = build_untrained(width, threshold, seed).train().requires_grad_(True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    start, steps = time.monotonic(), 0
    with one_thread():
        while (time.monotonic() - start < seconds or steps == 0) and (steps_limit is None or steps < steps_limit):
            images, labels = make_data(batch, seed=1000 + steps)
            loss = sum(nn.functional.cross_entropy(out, labels) for out in model.run_all_exits(images))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        model.frozen()
        report = evaluate(model, *make_data(eval_count, seed=7), threshold) if eval_count else {}
    report.update(train_seconds=round(time.monotonic() - start, 1), train_steps=steps, width=width)
    return model, report


@torch.no_grad()
def evaluate(model: ExitChain, images: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict:
    """Per image (batch of one, as deployed): the exit the graph takes at `threshold`, and accuracy —
    of each head on every image, and of the routed prediction per exit taken."""
    outs = model.run_all_exits(images)
    head_correct = [(o.argmax(1) == labels) for o in outs]
    taken = torch.tensor([model.exit_of(torch.stack([model.score_of(k, o[i:i + 1]) for k, o in
                                                     enumerate(outs[:-1])]), threshold)
                          for i in range(len(labels))])
    routed = torch.stack(head_correct)[taken, torch.arange(len(labels))]
    return {
        "threshold": threshold,
        "samples": len(labels),
        "exit_histogram": [int((taken == k).sum()) for k in range(model.num_exits)],
        "accuracy_per_head": [round(float(c.float().mean()), 3) for c in head_correct],
        "accuracy_per_exit_taken": [round(float(routed[taken == k].float().mean()), 3) if (taken == k).any()
                                    else None for k in range(model.num_exits)],
        "accuracy_routed": round(float(routed.float().mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--save", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    model, report = train(args.seconds, args.width, args.threshold)
    torch.save({"model": model.state_dict(), "width": args.width, "threshold": args.threshold}, args.save)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
