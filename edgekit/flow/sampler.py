"""`sampler`: a step function → a module that runs it `num_steps` times in one `while_loop` (→ one ONNX
`Loop`, whatever N is), following zoo:storm's conventions (DESIGN.md §6): `num_steps` is an int64 scalar
input clamped to [1, max_steps] in the graph and range-checked by every runner; `noise` is an input
[max_steps, *noise_shape] and step i reads noise[i], so a run is deterministic for a given noise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch._higher_order_ops.while_loop import while_loop

from edgekit.errors import SourceError

Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
MAX_KNOB_CANDIDATES = 16


class Sampler(nn.Module):
    """(x, num_steps, noise) → x after N = clamp(num_steps, 1, max_steps) steps.

    Step i (0-based) computes `x = step(x, i, n, noise[i])` with `i` and `n` (= N) int64 0-d tensors:
    derive a schedule with tensor ops (`t = 1 - i.float() / n.float()`), not Python numbers, so the one
    Loop body serves every N.
    """

    output_names = ("output",)

    def __init__(self, step: Step, *, max_steps: int, noise_shape: Sequence[int], example_input: torch.Tensor,
                 input_name: str, dynamic_shapes: Mapping[str, Mapping[int, str]] | None,
                 steps: Sequence[int] | None, seed: int):
        super().__init__()
        # a step that is an nn.Module (a denoising network) is registered: it trains, exports and saves
        # with the sampler (one attribute only, so its weights appear once in the state dict)
        if isinstance(step, nn.Module):
            self.step_module = step
        else:
            self.step_module, self._step_fn = None, step
        self.max_steps = int(max_steps)
        self.noise_shape = tuple(int(d) for d in noise_shape)
        self.input_names = (input_name, "num_steps", "noise")
        self._example = example_input.detach().clone()
        self._dynamic = {k: dict(v) for k, v in (dynamic_shapes or {}).items()}
        self._steps = list(steps) if steps is not None else None
        self.seed = seed

    def forward(self, x: torch.Tensor, num_steps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.run(x, num_steps, noise)

    def run(self, x: torch.Tensor, num_steps: torch.Tensor, noise: torch.Tensor, *context: torch.Tensor,
            noise_offset: int = 0):
        """The loop, for a model that wraps the sampler in its own forward (zoo:storm: a predictive pass
        first). `context` tensors, computed once before the loop, reach every step: step(x, i, n, z, *context).
        Step i reads noise[noise_offset + i] (zoo:storm keeps noise[0] for its prior). An offset rather than
        noise[1:]: that Slice copies the whole noise tensor on every call (48 MB for zoo:storm on a
        232-frame mixture), to read N rows of it."""
        n = torch.clamp(num_steps.to(torch.int64), 1, self.max_steps)

        def keep_going(i, x):
            return i < n

        def body(i, x):
            index = (i + noise_offset if noise_offset else i).reshape(1)
            z = noise.index_select(0, index)[0]  # noise[i] as tensor ops: no data-dependent int
            return i + 1, self.step(x, i, n, z, *context)

        # the carried x is a copy: a loop output may not alias a graph input
        state = (torch.zeros((), dtype=torch.int64), x.clone())
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return while_loop(keep_going, body, state)[1]
        # Eager: the same body in a Python loop (eager while_loop compiles itself, seconds per new shape),
        # checking what the exported Loop would reject: a step that changes x's shape or dtype.
        while keep_going(*state):
            i, new = body(*state)
            _check_step_output(state[1], new, int(state[0]))
            state = (i, new)
        return state[1]

    def step(self, x: torch.Tensor, i: torch.Tensor, n: torch.Tensor, z: torch.Tensor,
             *context: torch.Tensor) -> torch.Tensor:
        """One step of the sampler (the function or module it was built from)."""
        step = self.step_module if self.step_module is not None else self._step_fn
        return step(x, i, n, z, *context)

    def make_noise(self, seed: int | None = None) -> torch.Tensor:
        """Standard normal noise [max_steps, *noise_shape] from `seed` (default: the sampler's)."""
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        return torch.randn((self.max_steps, *self.noise_shape), generator=generator)

    def sample(self, x: torch.Tensor, num_steps: int, seed: int | None = None) -> torch.Tensor:
        """Run N steps with noise drawn from `seed`; raises SourceError for N outside [1, max_steps]."""
        if not 1 <= int(num_steps) <= self.max_steps:
            raise SourceError(f"sampler: num_steps must be in [1, {self.max_steps}], got {num_steps}")
        with torch.no_grad():
            return self(x, torch.tensor(int(num_steps), dtype=torch.int64), self.make_noise(seed))

    def frozen(self) -> Sampler:
        """eval() and requires_grad_(False) (export traces a backward through the loop otherwise)."""
        return self.eval().requires_grad_(False)

    # --- hooks edgekit reads ----------------------------------------------------------------------
    def example_inputs(self):
        n = torch.tensor(max(1, self.max_steps // 2), dtype=torch.int64)
        return self._example.clone(), n, self.make_noise()

    def dynamic_shapes(self):
        return {name: self._dynamic.get(name) or None for name in self.input_names}

    def input_ranges(self):
        """Valid step counts, recorded in the manifest and checked by every runner before it runs."""
        return {"num_steps": (1, self.max_steps)}

    def validation_feeds(self):
        """The example input and noise at N ∈ {1, max_steps // 2, max_steps}."""
        x, _, noise = self.example_inputs()
        return [{self.input_names[0]: x, "num_steps": torch.tensor(n, dtype=torch.int64), "noise": noise}
                for n in sorted({1, max(1, self.max_steps // 2), self.max_steps})]

    def tuning_knobs(self):
        return [{"input": "num_steps", "kind": "steps", "candidates": self._steps or default_steps(self.max_steps)}]


def default_steps(max_steps: int) -> list[int]:
    """1..max_steps, thinned to about MAX_KNOB_CANDIDATES roughly geometric values (always 1 and max)."""
    if max_steps <= MAX_KNOB_CANDIDATES:
        return list(range(1, max_steps + 1))
    ratio = max_steps ** (1 / (MAX_KNOB_CANDIDATES - 1))
    return sorted({1, max_steps, *(round(ratio ** k) for k in range(MAX_KNOB_CANDIDATES))})


def sampler(step: Step, *, max_steps: int | None = None, noise_shape: Sequence[int] | None = None,
            example_input: torch.Tensor | None = None, input_name: str = "x",
            dynamic_shapes: Mapping[str, Mapping[int, str]] | None = None, steps: Sequence[int] | None = None,
            seed: int = 0) -> Sampler:
    """An iterative sampler from your own step function, frozen and in eval mode, ready for `edgekit export`.

    step: callable or nn.Module `(x, i, n, z) → x'` (same shape and dtype as x; i, n int64 0-d tensors;
    z = noise[i] of shape noise_shape). max_steps: the largest N (the noise input's first dim).
    noise_shape: the shape of one step's noise. example_input: the initial x, batch included.
    dynamic_shapes: {input name: {axis: dim name}} (the noise input is "noise"). steps: the `edgekit tune`
    candidates (default: 1..max_steps, thinned). seed: the noise of the example and validation feeds.

    Raises SourceError for a missing or non-positive max_steps, a missing noise_shape or example_input,
    and a step that fails on the example or changes x's shape or dtype.
    """
    if max_steps is None:
        raise SourceError("sampler: max_steps is required: it sizes the noise input [max_steps, ...] and "
                          "bounds num_steps (clamped to [1, max_steps] in the graph)")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise SourceError(f"sampler: max_steps must be an int >= 1, got {max_steps!r}")
    if noise_shape is None:
        raise SourceError("sampler: noise_shape is required: the shape of one step's noise (noise[i]); "
                          "use () for a step that takes none")
    if not isinstance(example_input, torch.Tensor):
        raise SourceError("sampler: example_input is required: a tensor, the initial x (batch included)")
    model = Sampler(step, max_steps=max_steps, noise_shape=noise_shape, example_input=example_input,
                    input_name=input_name, dynamic_shapes=dynamic_shapes, steps=steps, seed=seed).frozen()
    x, _, noise = model.example_inputs()
    with torch.no_grad():
        try:
            out = step(x, torch.zeros((), dtype=torch.int64), torch.tensor(max_steps, dtype=torch.int64), noise[0])
        except Exception as exc:
            raise SourceError(f"sampler: the step failed on example_input: {type(exc).__name__}: {exc}") from exc
    _check_step_output(x, out, 0)
    return model


def _check_step_output(x: torch.Tensor, out, i: int) -> None:
    if not isinstance(out, torch.Tensor):
        raise SourceError(f"sampler: the step must return one tensor (the next x), step {i} returned "
                          f"{type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise SourceError(f"sampler: the step must keep x's shape and dtype (a Loop carries one fixed type): "
                          f"step {i} turned {list(x.shape)} {x.dtype} into {list(out.shape)} {out.dtype}")
