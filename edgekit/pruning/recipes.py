"""Built-in pruning recipes for zoo models: the all-branches trace and the recovery training between
pruning steps (zoo:rbqe: the per-exit MSE of rbqe_train on the demo image patches, through forward_all).
"""

from __future__ import annotations

import time

import torch

from edgekit.pruning.plan import PruningPlan

RBQE_BATCH, RBQE_PATCH, RBQE_LR = 8, 64, 1e-3


def recipe_for(module) -> PruningPlan | None:
    from edgekit.zoo.rbqe import Rbqe

    if isinstance(module, Rbqe):
        return _rbqe_plan(module)
    return None


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
        params = [p for p in model.parameters() if p.requires_grad]
        if seconds <= 0 or not params:
            return {"steps": 0, "seconds": 0.0}
        torch.manual_seed(self.seed)
        optimizer = torch.optim.Adam(params, lr=RBQE_LR)
        model.train()
        start, steps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            loss = self.loss(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        model.eval()
        return {"steps": steps, "seconds": round(time.perf_counter() - start, 1)}


def _rbqe_plan(model) -> PruningPlan:
    from edgekit.zoo.rbqe import Eca

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
