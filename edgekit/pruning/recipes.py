"""Built-in pruning recipes for zoo models: the all-branches trace and the recovery training between
pruning steps (zoo:rbqe: the per-exit MSE of rbqe_train on the demo image patches, through forward_all;
zoo:storm: both networks traced directly, recovered with the training loss of storm_train).
"""

from __future__ import annotations

import time

import torch

from edgekit.pruning.hooks import PruningPlan

RBQE_BATCH, RBQE_PATCH, RBQE_LR = 8, 64, 1e-3
STORM_BATCH, STORM_FRAMES, STORM_LR, STORM_CLIP = 4, 64, 1e-3, 5.0


def recipe_for(module) -> PruningPlan | None:
    from edgekit.zoo.rbqe import Rbqe
    from edgekit.zoo.storm import StoRM

    if isinstance(module, Rbqe):
        return _rbqe_plan(module)
    if isinstance(module, StoRM):
        return _storm_plan(module)
    return None


def adam_recovery(model, seconds: float, loss, lr: float, clip: float | None = None) -> dict:
    """Adam on `model`'s trainable parameters, one `loss(model)` batch per step, for `seconds` of wall time."""
    params = [p for p in model.parameters() if p.requires_grad]
    if seconds <= 0 or not params:
        return {"steps": 0, "seconds": 0.0}
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        value = loss(model)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        steps += 1
    model.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - start, 1)}


class RbqeRecovery:
    """Adam on the trainable parameters (U, V, biases for SPLoRA; all for fine-pruning) with the paper's
    QF-dependent per-exit loss weights, on random patches of the training demo images."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._sampler = None

    def _batch(self, levels: int):
        from edgekit.zoo.rbqe_train import PatchSampler, exit_weights

        if self._sampler is None:
            self._sampler = PatchSampler("train", seed=self.seed)
        inputs, targets, qfs = self._sampler.batch(RBQE_BATCH, RBQE_PATCH)
        weights = torch.tensor([exit_weights(int(q), levels) for q in qfs])
        return inputs, targets, weights

    def loss(self, model) -> torch.Tensor:
        inputs, targets, weights = self._batch(model.levels)
        outputs = model.forward_all(inputs)
        per_exit = torch.stack([(o - targets).square().mean(dim=(1, 2, 3)) for o in outputs], dim=1)
        return (weights * per_exit).sum(1).mean()

    def __call__(self, model, seconds: float) -> dict:
        torch.manual_seed(self.seed)
        return adam_recovery(model, seconds, self.loss, RBQE_LR)


def _rbqe_plan(model) -> PruningPlan:
    from edgekit.zoo.rbqe_blocks import Eca

    recovery = RbqeRecovery()
    # the smallest image five down-samplings allow: the trace only needs shapes, and is run ~15 times
    image = torch.rand(1, 1, 2 ** model.levels, 2 ** model.levels, generator=torch.Generator().manual_seed(0))
    return PruningPlan(
        trace=lambda m, inputs: m.forward_all(*inputs), trace_inputs=(image,),
        # ECA's 1-D conv runs across channels with no per-channel weights: pruning keeps it whole. A grouped
        # ECA needs equal-width edges, which uniform per-group pruning of RBQE's equal-width nodes keeps.
        channelwise=(Eca,), recover=recovery, loss=recovery.loss,
        recovery=f"zoo:rbqe recipe: Adam lr {RBQE_LR}, per-exit weighted MSE on {RBQE_BATCH}×{RBQE_PATCH}² "
                 "demo-image patches (rbqe_train.PatchSampler, exit_weights)")


class StormRecovery:
    """Adam on the trainable parameters with StoRM's joint training loss (0.5·predictive MSE + 0.5·DSM,
    storm_train.joint_loss) on random training mixtures, gradients clipped as in training. Seeded: the
    mixtures from `seed`, the diffusion times and noise of the n-th batch from `seed + n`."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._rng = None
        self._batches = 0

    def loss(self, model) -> torch.Tensor:
        import numpy as np

        from edgekit.zoo.storm_train import batch, joint_loss

        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        frames = max(STORM_FRAMES, 2 * model.frame_multiple)
        x, y = batch(self._rng, STORM_BATCH, frames, model.beta)
        # joint_loss draws t and z from torch's global generator: fork it, so recovery is reproducible
        # and leaves the caller's random state alone
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + self._batches)
            self._batches += 1
            return joint_loss(model, x, y)[0]

    def __call__(self, model, seconds: float) -> dict:
        return adam_recovery(model, seconds, self.loss, STORM_LR, clip=STORM_CLIP)


def _storm_plan(model) -> PruningPlan:
    from edgekit.zoo.storm_audio import N_BINS

    recovery = StormRecovery()
    # The sampler's while_loop cannot be traced by torch-pruning, and its channels are the networks'
    # anyway: trace D(y) and one score call directly, on the fewest frames the U-Net takes (the trace
    # only needs shapes). dy is an input of its own, so the score net's input channels stay a graph input.
    frames = 2 * model.frame_multiple
    g = torch.Generator().manual_seed(0)
    y, x, dy = (0.3 * torch.randn(1, 2, N_BINS, frames, generator=g) for _ in range(3))
    t = torch.tensor([0.5])
    return PruningPlan(
        trace=lambda m, inputs: (m.predict(inputs[0]), m.score(inputs[1], inputs[0], inputs[2], inputs[3])),
        trace_inputs=(y, x, dy, t), recover=recovery, loss=recovery.loss,
        recovery=f"zoo:storm recipe: Adam lr {STORM_LR}, StoRM joint loss (0.5·predictive MSE + 0.5·denoising "
                 f"score matching) on {STORM_BATCH}×{STORM_FRAMES}-frame training mixtures "
                 "(storm_train.batch, joint_loss)")
