"""zoo:storm — StoRM speech enhancement (Lemercier, Richter, Welker, Gerkmann, TASLP 2023) with a run-time
step count: the predictive pass D(y) runs once, then `num_steps` predictor–corrector steps of the
OUVE reverse diffusion run inside ONE `while_loop` (→ one ONNX `Loop`, whatever N is): an
`edgekit.flow.Sampler` whose step is `StoRM._step`.

Graph inputs / outputs (float32 unless noted; F = 256 bins; `frames` dynamic, see below):
- `noisy_spec` [1, 2, 256, frames]: compressed complex STFT (Re, Im) from `storm_audio.spec_from_wave`.
- `num_steps` int64 scalar: N; clamped in-graph to [1, max_steps] (the Python helpers reject bad N).
- `noise` [max_steps + 1, 2, 2, 256, frames]: standard normal noise. `noise[0, 0]` is the prior noise
  (x_T = D(y) + std(1)·noise[0, 0]; `noise[0, 1]` is unused); step i (0-based) uses `noise[1 + i, 0]`
  for its corrector and `noise[1 + i, 1]` for its predictor.
- `enhanced_spec` [1, 2, 256, frames]: the last predictor step's noise-free mean.

`frames` must be a multiple of m = 2**(levels−1) (the U-Net's down-sampling; 8 for levels=4) and ≥ 2m;
the exported dim is named `{m}*frame_blocks`. `storm_audio.spec_from_wave` zero-pads, `wave_from_spec`
crops. Step i uses t_i = 1 − i·dt, dt = (1 − t_eps)/(N − 1) (N = 1: t_0 = 1, dt = 1 − t_eps), and its
predictor moves to t_{i+1} (the last one to t = 0; see `StoRM._step`).

Export through `torch.export.export(..., strict=False)` and then `torch.onnx.export(program, dynamo=True)`
(what edgekit.export.onnx does). Handing the module straight to `torch.onnx.export` fails with torch
2.13: its deferred runtime asserts put `aten.sym_stride` (no ONNX lowering) into the Loop body.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekit.errors import SourceError
from edgekit.flow.sampler import Sampler
from edgekit.zoo import storm_audio as audio
from edgekit.zoo import storm_sde as sde
from edgekit.zoo.registry import register_zoo
from edgekit.zoo.storm_feeds import check_frames, check_num_steps, make_noise, storm_feed  # noqa: F401 (public here too)
from edgekit.zoo.storm_nets import UNet

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "storm_nf16.pt"


class StoRM(nn.Module):
    """noisy compressed spectrum → enhanced one: D(y) once, then N predictor–corrector steps."""

    input_names = ("noisy_spec", "num_steps", "noise")
    output_names = ("enhanced_spec",)

    def __init__(self, nf: int = 16, levels: int = 4, max_steps: int = 50, beta: float = audio.DEFAULT_BETA):
        super().__init__()
        if levels < 1 or nf < 4 or nf % 4:
            raise SourceError(f"zoo:storm: need levels >= 1 and nf a multiple of 4 >= 4, got {nf=}, {levels=}")
        if max_steps < 1:
            raise SourceError(f"zoo:storm: max_steps must be >= 1, got {max_steps}")
        self.nf, self.levels, self.max_steps, self.beta = nf, levels, max_steps, beta
        self.frame_multiple = 2 ** (levels - 1)  # the U-Net's total down-sampling along frames
        self.predictive = UNet(2, nf, levels, time_embedding=False)
        self.score_net = UNet(6, nf, levels, time_embedding=True)
        # the N steps: one while_loop (→ one ONNX Loop) written once in edgekit.flow. No weights of its own
        # (the step is a method here), so the checkpoints' keys are unchanged; StoRM's own hooks below
        # (noise layout [max_steps + 1, …], dynamic frames) are the graph's, not the sampler's defaults.
        example = torch.zeros(1, 2, audio.N_BINS, 2 * self.frame_multiple)
        self.sampler = Sampler(self._step, max_steps=max_steps, noise_shape=(2, *example.shape[1:]),
                               example_input=example, input_name="noisy_spec", dynamic_shapes=None, steps=None,
                               seed=0)

    # --- the two networks ----------------------------------------------------------------------
    def predict(self, y: torch.Tensor) -> torch.Tensor:
        """The predictive model alone: D(y) = y + U-Net(y) (a residual output: our choice, it trains faster)."""
        return y + self.predictive(y)

    def score(self, x: torch.Tensor, y: torch.Tensor, dy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s(x_t, [y, D(y)], t) = U-Net(x_t, y, D(y); t) / std(t); `t` has shape [B]."""
        out = self.score_net(torch.cat([x, y, dy], dim=1), t)
        return out / sde.marginal_std(t)[:, None, None, None]

    # --- the exported graph --------------------------------------------------------------------
    def forward(self, noisy_spec: torch.Tensor, num_steps: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        y = noisy_spec
        dy = self.predict(y)
        # noise[0, 0] starts the sampler; step i reads noise[1 + i]
        return self.sampler.run(self._prior(dy, noise), num_steps, noise, y, dy, noise_offset=1)

    def forward_unrolled(self, noisy_spec: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
        """The sampler with a fixed step count as straight-line code: traced, it is the unrolled reference
        the `Loop` graph's per-step cost is measured against (benchmarks/storm_loop.py)."""
        y = noisy_spec
        dy = self.predict(y)
        x, n = self._prior(dy, noise), torch.tensor(steps, dtype=torch.int64)
        for i in range(steps):
            x = self._step(x, torch.tensor(i, dtype=torch.int64), n, noise[1 + i], y, dy)
        return x

    def _prior(self, dy: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return dy + sde.prior_std() * noise[0, 0:1]

    def _step(self, x, i, n, z, y, dy):
        """Predictor–corrector step i of N = n (an `edgekit.flow.Sampler` step; z = noise[1 + i]).

        Step i runs at t_i = 1 − i·dt and moves to t_{i+1} (t_N = 0): one annealed Langevin corrector
        step at t_i, then a predictor that draws x_{t_{i+1}} from the OUVE transition's posterior given
        x_t and the denoised estimate x̂0 = μ + (x_t + std(t)²·s − μ)/e^{−γt} (Tweedie):
            x_mean = μ + (x − μ)/a + (std(t)²/a − a·std(s)²)·s,   a = e^{−γ(t−s)},
            x = x_mean + std(s)·√(1 − a²·std(s)²/std(t)²)·z.
        To first order in dt this is the reverse-diffusion (Euler–Maruyama) step x − [γ(μ − x) − g²·s]dt
        of the paper; unlike it, it cannot overshoot when g(t)²·dt ≫ std(t)² (the EM step did ≈ 7× at
        N = 1, and collapsed at N ≤ 5), and its last step (s = 0) returns x̂0, the noise-free mean
        (its noise term is 0·z there, so the loop carries x alone).
        """
        dt = (1.0 - sde.T_EPS) / torch.clamp(n - 1, min=1).to(torch.float32)
        t = (1.0 - i.to(torch.float32) * dt).reshape(1)
        last = (i + 1 >= n).reshape(1)
        s_next = torch.where(last, torch.zeros_like(t), t - dt)
        std_t = sde.marginal_std(t)
        # corrector: one annealed Langevin step, step size 2(r·std)² (sgmse AnnealedLangevinDynamics)
        step_size = 2.0 * (sde.SNR * std_t) ** 2
        x = x + step_size * self.score(x, y, dy, t) + torch.sqrt(2.0 * step_size) * z[0:1]
        # predictor: the OUVE posterior step t → s_next around the Tweedie estimate (see docstring)
        std_s = torch.where(last, torch.zeros_like(t), sde.marginal_std(s_next.clamp(min=sde.T_EPS)))
        a = torch.exp(-sde.GAMMA * (t - s_next))
        x_mean = dy + (x - dy) / a + (std_t**2 / a - a * std_s**2) * self.score(x, y, dy, t)
        var = (std_s**2 * (1.0 - a**2 * std_s**2 / std_t**2)).clamp(min=0.0)
        return x_mean + torch.sqrt(var) * z[1:2]

    # --- Python helpers (validate, then call the graph) -----------------------------------------
    def enhance_spec(self, noisy_spec: torch.Tensor, num_steps, noise: torch.Tensor | None = None,
                     seed: int = 0) -> torch.Tensor:
        """Run the sampler with a validated step count; noise is drawn from `seed` when not given."""
        n = check_num_steps(num_steps, self.max_steps)
        check_frames(noisy_spec.shape[-1], self.frame_multiple)
        if noise is None:
            noise = make_noise(self.max_steps, noisy_spec.shape[-1], seed)
        with torch.no_grad():
            return self(noisy_spec, torch.tensor(n, dtype=torch.int64), noise)

    def enhance(self, waveform, num_steps: int, seed: int = 0) -> torch.Tensor:
        """16 kHz waveform [L] → enhanced waveform [L] (STFT → sampler → iSTFT)."""
        wave = torch.as_tensor(np.asarray(waveform), dtype=torch.float32).reshape(-1)
        spec, norm, _ = audio.spec_from_wave(wave, self.beta, self.frame_multiple)
        out = self.enhance_spec(spec, num_steps, seed=seed)
        return audio.wave_from_spec(out, norm, wave.numel(), self.beta)

    def predict_wave(self, waveform) -> torch.Tensor:
        """16 kHz waveform [L] → the predictive model's estimate D(y) as a waveform [L]."""
        wave = torch.as_tensor(np.asarray(waveform), dtype=torch.float32).reshape(-1)
        spec, norm, _ = audio.spec_from_wave(wave, self.beta, self.frame_multiple)
        with torch.no_grad():
            out = self.predict(spec)
        return audio.wave_from_spec(out, norm, wave.numel(), self.beta)

    # --- hooks edgekit reads ----------------------------------------------------------------------
    def example_inputs(self):
        frames = 3 * self.frame_multiple
        spec = 0.3 * torch.randn(1, 2, audio.N_BINS, frames, generator=torch.Generator().manual_seed(1))
        n = torch.tensor(max(1, self.max_steps // 2), dtype=torch.int64)
        return spec, n, make_noise(self.max_steps, frames, seed=2)

    def dynamic_shapes(self):
        # frames = frame_multiple · k, k ≥ 2 (torch.export guards that no U-Net level shrinks to 1 frame)
        frames = self.frame_multiple * torch.export.Dim("frame_blocks", min=2)
        return {"noisy_spec": {3: frames}, "noise": {4: frames}}

    def tuning_knobs(self):
        """`edgekit tune`: the step count N (the costliest, best-quality setting is max_steps)."""
        steps = [n for n in (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50) if n < self.max_steps]
        return [{"input": "num_steps", "kind": "steps", "candidates": steps + [self.max_steps]}]

    def input_ranges(self):
        """Valid step counts, recorded in the manifest and checked by every runner before it runs."""
        return {"num_steps": (1, self.max_steps)}

    def validation_feeds(self):
        """Fixed spectrum and noise; N ∈ {1, max_steps // 2, max_steps}."""
        spec, _, noise = self.example_inputs()
        steps = sorted({1, max(1, self.max_steps // 2), self.max_steps})
        return [{"noisy_spec": spec, "num_steps": torch.tensor(s, dtype=torch.int64), "noise": noise}
                for s in steps]


    def calibration_feeds(self, count: int):
        """INT8 calibration: up to 32 one-second training mixtures at N ∈ {5, 10, 20} (edgekit.zoo.storm_task)."""
        from edgekit.zoo.storm_task import calibration_feeds

        return calibration_feeds(self, count)

    def task_metric(self):
        """INT8 budget: SI-SDR of held-out mixtures at N = 20 (edgekit.validation.metrics.TaskMetric)."""
        from edgekit.zoo.storm_task import task_metric

        return task_metric(self)


def load_weights(model: StoRM, weights: str) -> StoRM:
    """"default" → the shipped checkpoint, "none" → keep the random init, else a checkpoint path."""
    if weights == "none":
        return model
    path = DEFAULT_WEIGHTS if weights == "default" else Path(weights)
    if not path.is_file():
        raise SourceError(f"zoo:storm: weights file {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SourceError(f"zoo:storm: cannot read weights {path}: {type(exc).__name__}: {exc}") from exc
    config = checkpoint.get("config", {})
    wanted = {"nf": model.nf, "levels": model.levels, "beta": model.beta}
    if any(config.get(k) != v for k, v in wanted.items()):
        raise SourceError(
            f"zoo:storm: weights {path.name} were trained with {config}, but the model asks for {wanted} "
            "(use weights=none for a random init, or matching nf/levels/beta)"
        )
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise SourceError(f"zoo:storm: weights {path} do not fit the model: {exc}") from exc
    return model


@register_zoo(
    "storm",
    "StoRM speech enhancement: predictive U-Net + score diffusion, N predictor-corrector steps in one Loop",
    tiny={"nf": 4, "levels": 2, "max_steps": 4, "weights": "none"},
)
def build_storm(nf: int = 16, levels: int = 4, max_steps: int = 50, beta: float = audio.DEFAULT_BETA,
                weights: str = "default", seed: int = 0) -> StoRM:
    torch.manual_seed(seed)
    return load_weights(StoRM(nf=nf, levels=levels, max_steps=max_steps, beta=beta), weights).eval()


def enhance(waveform, num_steps: int = 20, seed: int = 0, model: StoRM | None = None) -> torch.Tensor:
    """Enhance a 16 kHz waveform with the shipped model (or `model`); returns the waveform [L]."""
    model = model if model is not None else build_storm()
    return model.enhance(waveform, num_steps, seed)
