"""`exit_chain`: stages + heads + a score → a module with early exits as nested `torch.cond` (→ nested
ONNX `If`), written once here with the exporter pitfalls of DESIGN.md §6 handled, and the hooks
`edgekit export` reads (example inputs, names, dynamic dims, feeds that reach every exit, a knob).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from edgekit.errors import SourceError

Score = Callable[..., torch.Tensor]
Features = torch.Tensor | tuple[torch.Tensor, ...]  # a stage's output: one tensor, or several (skips)


class ExitChain(nn.Module):
    """(x, threshold) → (output, exit_index int64 scalar; 0 = first exit).

    Stage k maps the previous stage's features to its own; head k turns them into exit k's output. After
    every exit but the last, `score(output)` (a 0-d tensor) is compared with the threshold input: the
    chain returns at the first exit whose score is ≥ threshold, the last exit always returns. Every head
    must return the same shape and dtype (both branches of an `If` must).
    """

    output_names = ("output", "exit_index")

    def __init__(self, stages: Sequence[nn.Module], heads: Sequence[nn.Module], scores: Sequence[Score], *,
                 example_input: torch.Tensor, threshold: float, threshold_input: str, input_name: str,
                 dynamic_shapes: Mapping[int, str] | None, probe_inputs: Sequence[torch.Tensor] | None,
                 thresholds: Sequence[float] | None, score_on: str = "output"):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)
        self._scores = list(scores)
        self.score_on = score_on
        # learned scores (nn.Module) train, export and save with the chain; plain functions need no home
        self.score_modules = nn.ModuleList(dict.fromkeys(s for s in scores if isinstance(s, nn.Module)))
        self._names = (input_name, threshold_input)
        self.threshold = float(threshold)
        self._example = example_input.detach().clone()
        self._dynamic = dict(dynamic_shapes or {})
        self._probes = [p.detach().clone() for p in probe_inputs] if probe_inputs is not None else None
        self._thresholds = list(thresholds) if thresholds is not None else None

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def num_exits(self) -> int:
        return len(self.heads)

    def run_stage(self, k: int, features: Features) -> Features:
        """Stage k on the previous stage's features (the chain's input for k = 0). A subclass that keeps
        its layers elsewhere (zoo:rbqe's UNet++ nodes) overrides this, run_head and num_exits."""
        return self.stages[k](features)

    def run_head(self, k: int, features: Features) -> torch.Tensor:
        return self.heads[k](features)

    # --- the graph ------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, threshold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._continue(0, x, threshold)

    def _continue(self, k: int, features: torch.Tensor, threshold: torch.Tensor):
        """Stage k and its head; below the last exit, branch on score ≥ threshold (one nested torch.cond)."""
        features = self.run_stage(k, features)
        if k == self.num_exits - 1:
            return self.run_head(k, features), torch.full((), k, dtype=torch.int64)
        packed = isinstance(features, tuple)  # several tensors (skip connections): flat cond operands
        flat = features if packed else (features,)

        def unpack(flat):
            return tuple(flat) if packed else flat[0]

        # Scored on features, head k runs inside the stop branch only (a deeper path never pays for it);
        # scored on its output, it runs before the decision and the branch hands the output back.
        # Branch pitfalls (DESIGN.md §6): an operand returned as is fails ("aliasing") → clone; a constant
        # made with torch.tensor fails → torch.full.
        if self.score_on == "features":
            good = self.score_of(k, features) >= threshold
            head = ()
        else:
            head = (self.run_head(k, features),)
            good = self.score_of(k, head[0]) >= threshold

        def stop(*operands):
            out = operands[0] if head else self.run_head(k, unpack(operands[1:]))
            out = out.clone() if any(out is o for o in operands) else out  # an Identity head, too
            return out, torch.full((), k, dtype=torch.int64)

        def deeper(*operands):
            threshold, *flat = operands[len(head):]
            result, index = self._continue(k + 1, unpack(flat), threshold)
            return result.clone(), index

        operands = (*head, threshold, *flat)
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return torch.cond(good, stop, deeper, operands)
        # Eager: the same branches picked in Python (eager torch.cond compiles itself with dynamo, seconds
        # per new input shape, which would make the PyTorch reference slow).
        return stop(*operands) if bool(good) else deeper(*operands)

    def score_of(self, k: int, value: Features) -> torch.Tensor:
        """Exit k's score of its output (of stage k's features with score_on="features"); raises
        SourceError unless it is a 0-d tensor."""
        score = self._scores[min(k, len(self._scores) - 1)](value)
        if not isinstance(score, torch.Tensor) or score.dim() != 0:
            shape = list(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
            raise SourceError(f"exit_chain: the score of exit {k} must be a 0-d tensor (one decision for the "
                              f"batch: reduce it, e.g. .min()), it gave {shape}")
        return score

    # --- training, pruning, threshold picking ------------------------------------------------------
    def run_all_exits(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every exit's output, shallow to deep, no branching: for training (a loss on each exit) and for
        dependency tracing (pruning)."""
        return tuple(out for _, out in self._every_exit(x))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """run_all_exits under the name pruning and the zoo's training read."""
        return self.run_all_exits(x)

    def _every_exit(self, x: torch.Tensor) -> list[tuple[Features, torch.Tensor]]:
        pairs, features = [], x
        for k in range(self.num_exits):
            features = self.run_stage(k, features)
            pairs.append((features, self.run_head(k, features)))
        return pairs

    def exit_scores(self, x: torch.Tensor) -> torch.Tensor:
        """[num_exits − 1] scores of the early exits on `x` (the last exit has no decision to make)."""
        with torch.no_grad():
            return self._scores_of(self._every_exit(x))

    def _scores_of(self, pairs: list[tuple[Features, torch.Tensor]]) -> torch.Tensor:
        return torch.stack([self.score_of(k, f if self.score_on == "features" else o).double()
                            for k, (f, o) in enumerate(pairs[:-1])])

    def exit_of(self, scores: torch.Tensor, threshold: float) -> int:
        """The exit the graph takes for these early-exit scores at `threshold`."""
        for k, score in enumerate(scores.tolist()):
            if score >= threshold:
                return k
        return self.num_exits - 1

    def frozen(self) -> ExitChain:
        """eval() and requires_grad_(False): export traces nested torch.cond with a backward otherwise
        (~9× slower, DESIGN.md §6). `exit_chain` returns chains frozen; `.train().requires_grad_(True)`
        to train."""
        return self.eval().requires_grad_(False)

    # --- hooks edgekit reads ----------------------------------------------------------------------
    def example_inputs(self):
        return self._example.clone(), torch.tensor(self.threshold, dtype=torch.float32)

    def dynamic_shapes(self):
        return {self.input_names[0]: dict(self._dynamic) or None, self.input_names[1]: None}

    def validation_feeds(self):
        """One feed per exit (planted thresholds between the probes' scores), in exit order."""
        from edgekit.flow.exit_feeds import feeds_for_every_exit

        return feeds_for_every_exit(self, self.probe_inputs())

    def tuning_knobs(self):
        from edgekit.flow.exit_feeds import threshold_candidates

        candidates = self._thresholds or threshold_candidates(self, self.probe_inputs())
        return [{"input": self.input_names[1], "kind": "exit_threshold", "path_output": "exit_index",
                 "candidates": candidates, "costliest": max(candidates)}]

    def probe_inputs(self) -> list[torch.Tensor]:
        """Inputs whose exit scores place the planted thresholds: the ones given, else the example input
        and noisy variants of it."""
        if self._probes is not None:
            return [p.clone() for p in self._probes]
        from edgekit.flow.exit_feeds import default_probes

        return default_probes(self._example)


def exit_chain(stages: Sequence[nn.Module], heads: Sequence[nn.Module], score: Score | Sequence[Score], *,
               example_input: torch.Tensor, threshold: float = 0.5, threshold_input: str = "threshold",
               input_name: str = "x", dynamic_shapes: Mapping[int, str] | None = None,
               probe_inputs: Sequence[torch.Tensor] | None = None,
               thresholds: Sequence[float] | None = None, score_on: str = "output") -> ExitChain:
    """An early-exit network from your own pieces, frozen and in eval mode, ready for `edgekit export`.

    stages, heads: one per exit (stage k feeds stage k+1 and head k). score: a callable or nn.Module
    head output → 0-d tensor (`max_softmax`, `entropy_confidence`, a learned confidence), or one per early
    exit. example_input: traces the model and anchors validation. threshold: the threshold input's example
    and default value. dynamic_shapes: {axis: dim name} for the input (e.g. {0: "batch"}). probe_inputs:
    real inputs to plant the validation thresholds with (default: noisy copies of example_input).
    thresholds: the `edgekit tune` candidates (default: quantiles of the probes' scores, plus one above
    them all: the costliest, deepest setting). score_on: "output" (the score reads exit k's output) or
    "features" (stage k's features, e.g. a confidence computed before the head). A stage may return a
    tuple of tensors (skip connections for later stages); heads and the next stage receive the tuple.

    Raises SourceError for mismatched stages/heads, heads whose outputs differ in shape or dtype, or a
    score that is not a 0-d tensor on example_input.
    """
    stages, heads = list(stages), list(heads)
    scores = [score] if callable(score) else list(score)
    if not stages or len(stages) != len(heads):
        raise SourceError(f"exit_chain: need one head per stage, got {len(stages)} stages and {len(heads)} heads")
    if not scores or not all(callable(s) for s in scores) or len(scores) not in (1, len(heads) - 1, len(heads)):
        raise SourceError(f"exit_chain: score is one callable or one per early exit ({len(heads) - 1}), "
                          f"got {score!r}")
    if not isinstance(example_input, torch.Tensor):
        raise SourceError("exit_chain: example_input must be a tensor (the model's input, batch included)")
    if score_on not in ("output", "features"):
        raise SourceError(f"exit_chain: score_on must be 'output' or 'features', got {score_on!r}")
    chain = ExitChain(stages, heads, scores, example_input=example_input, threshold=threshold,
                      threshold_input=threshold_input, input_name=input_name, dynamic_shapes=dynamic_shapes,
                      probe_inputs=probe_inputs, thresholds=thresholds, score_on=score_on).frozen()
    _check_on_example(chain)
    return chain


def _check_on_example(chain: ExitChain) -> None:
    """Run every exit once: heads must agree in shape and dtype (the If's two branches) and scores be 0-d."""
    with torch.no_grad():
        try:
            pairs = chain._every_exit(chain._example)
        except Exception as exc:
            raise SourceError(f"exit_chain: running the stages and heads on example_input failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        outs = [out for _, out in pairs]
        kinds: list[Any] = [(tuple(o.shape), o.dtype) if isinstance(o, torch.Tensor) else type(o).__name__
                            for o in outs]
        if any(k != kinds[0] for k in kinds) or not isinstance(outs[0], torch.Tensor):
            listed = ", ".join(f"exit {i}: {k}" for i, k in enumerate(kinds))
            raise SourceError(f"exit_chain: every head must return one tensor of the same shape and dtype "
                              f"(they are the branches of an If); got {listed}")
        chain._scores_of(pairs)  # raises for a score that is not 0-d
