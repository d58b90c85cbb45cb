"""zoo:toy — a small conv net with an in-graph early exit (`torch.cond` → ONNX `If`) and an iterative
refiner (`while_loop` → ONNX `Loop`). It is the demo model and the smallest model that exercises every
dynamic-control-flow path of the pipeline; it also shows the optional hooks edgekit reads from a model
(see `edgekit.sources.MODEL_HOOKS`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch._higher_order_ops.while_loop import while_loop

from edgekit.flow.exits import ExitChain
from edgekit.zoo.registry import register_zoo


class ToyExitRefiner(ExitChain):
    """image → stem → (exit 0 | deeper block) → `num_steps` refinement steps → (output, exit_index).

    The exit is an `edgekit.flow.ExitChain` of two exits whose score reads the stem's features (a
    confidence computed before either head); the refinement loop follows it.
    """

    input_names = ("image", "threshold", "num_steps")
    output_names = ("output", "exit_index")

    def __init__(self, width: int = 16, max_steps: int = 8, threshold: float = 0.5):
        # the hooks below replace the chain's example, feeds and knobs, so its example_input is never used
        super().__init__([], [], [self._confidence], example_input=torch.zeros(1, 3, 32, 32),
                         threshold=threshold, threshold_input="threshold", input_name="image",
                         dynamic_shapes=None, probe_inputs=None, thresholds=None, score_on="features")
        self.max_steps = max_steps
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.exit0 = nn.Conv2d(width, 3, 3, padding=1)
        self.deep = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1)
        )
        self.refine = nn.Conv2d(3, 3, 3, padding=1)

    # the chain: stage 0 = stem, stage 1 passes its features on; heads exit0 and deep, both residual
    num_exits = 2

    def run_stage(self, k: int, state):
        return (state, self.stem(state)) if k == 0 else state

    def run_head(self, k: int, state) -> torch.Tensor:
        image, features = state
        return (self.exit0 if k == 0 else self.deep)(features) + image

    @staticmethod
    def _confidence(state) -> torch.Tensor:
        # in [0, 1]: high when the stem's response is weak, so the cheap exit suffices
        return torch.sigmoid(-state[1].mean())

    def forward(self, image, threshold, num_steps):
        out, exit_index = super().forward(image, threshold)

        def keep_going(step, x):
            return step < num_steps

        def step_once(step, x):
            return step + 1, x + 0.1 * torch.tanh(self.refine(x))

        _, out = while_loop(keep_going, step_once, (torch.zeros((), dtype=torch.int64), out))
        return out, exit_index

    # --- hooks edgekit reads (all optional) --------------------------------------------------
    def example_inputs(self):
        return (
            torch.randn(1, 3, 32, 32),
            torch.tensor(self.threshold, dtype=torch.float32),
            torch.tensor(min(3, self.max_steps), dtype=torch.int64),
        )

    def dynamic_shapes(self):
        return {"image": {2: "height", 3: "width"}}

    def tuning_knobs(self):
        """`edgekit tune`: the exit threshold (confidence is in (0, 1): 1.01 always goes deeper) and the steps."""
        thresholds = [round(0.1 * i, 1) for i in range(11)] + [1.01]
        return [{"input": "threshold", "kind": "exit_threshold", "path_output": "exit_index",
                 "candidates": thresholds, "costliest": 1.01},
                {"input": "num_steps", "kind": "steps", "candidates": list(range(1, self.max_steps + 1))}]

    def validation_feeds(self):
        """Feeds that drive both branches and step counts {1, mid, max}."""
        image = torch.randn(1, 3, 32, 32)
        feeds = []
        for threshold, steps in ((-1.0, 1), (2.0, self.max_steps // 2), (-1.0, self.max_steps), (2.0, 1)):
            feeds.append(
                {
                    "image": image,
                    "threshold": torch.tensor(threshold, dtype=torch.float32),
                    "num_steps": torch.tensor(steps, dtype=torch.int64),
                }
            )
        return feeds


@register_zoo(
    "toy",
    "tiny conv net with an early exit (If) and a refinement loop (Loop); the demo model",
    tiny={"width": 4, "max_steps": 4},
)
def build_toy(width: int = 16, max_steps: int = 8, threshold: float = 0.5, seed: int = 0) -> ToyExitRefiner:
    torch.manual_seed(seed)
    return ToyExitRefiner(width=width, max_steps=max_steps, threshold=threshold).eval()
