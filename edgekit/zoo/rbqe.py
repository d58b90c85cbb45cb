"""zoo:rbqe — RBQE, resource-efficient blind quality enhancement of compressed images with early exits
(Xing et al., ECCV 2020): a nested UNet++ on the luma channel whose exits are chosen in-graph by the IQAM
quality score, as a chain of nested `torch.cond` (→ nested ONNX `If`). The reference dynamic model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgekit.errors import SourceError
from edgekit.flow.exits import ExitChain
from edgekit.zoo.rbqe_blocks import Eca, Up, conv_relu, separable
from edgekit.zoo.rbqe_iqam import PATCH_SIZE, Iqam
from edgekit.zoo.registry import register_zoo

DEFAULT_THRESHOLD = {"jpeg": 0.79, "hevc": 0.89}  # the paper's thresholds
WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = {("jpeg", 32, 5): WEIGHTS_DIR / "rbqe_jpeg_w32.pt"}


class Rbqe(ExitChain):
    """(image (B,1,H,W) luma in [0,1], threshold scalar) → (enhanced (B,1,H,W), exit_index int64 scalar).

    Node x[i, j] sits at scale i (H/2^i) and column j. Stage k computes the anti-diagonal i + j = k, which
    is all exit k needs: deeper exits reuse every earlier node. After exits 1..levels-1 the IQAM score of
    the output (the batch's minimum) is compared with `threshold`; the first exit that reaches it returns,
    the last always does. H and W must be multiples of 2**levels (32 for the default 5 levels).

    An `edgekit.flow.ExitChain` (nested torch.cond → nested ONNX If, written once there): its stages pass
    (image, every node so far) on, so the layers stay where the checkpoints have them (stem, down, up, …)
    and run_stage / run_head below index them.
    """

    input_names = ("image", "threshold")
    output_names = ("enhanced", "exit_index")

    def __init__(self, width: int = 32, levels: int = 5, codec: str = "jpeg", iqam: str = "robust"):
        if iqam not in ("paper", "robust"):
            raise SourceError(f"zoo:rbqe: iqam={iqam!r}: choose paper (Xing et al.) or robust (quiet patches "
                              f"count as clean: exit decisions that survive int8 noise)")
        if codec not in PATCH_SIZE:
            raise SourceError(f"zoo:rbqe: unknown codec {codec!r} (valid: {', '.join(PATCH_SIZE)})")
        if levels < 2:
            raise SourceError("zoo:rbqe: levels must be at least 2")
        # the hooks below replace the chain's own example, feeds and knobs; nothing here draws random numbers
        # (the layers' init order is the checkpoints' and the seed's)
        super().__init__([], [], [self._decision], example_input=torch.zeros(1, 1, 64, 64),
                         threshold=DEFAULT_THRESHOLD[codec], threshold_input="threshold", input_name="image",
                         dynamic_shapes=None, probe_inputs=None, thresholds=None)
        self.width, self.levels, self.codec = width, levels, codec
        self.stem = nn.Sequential(*conv_relu(1, width), *conv_relu(width, width))
        self.down = nn.ModuleList(
            nn.Sequential(*conv_relu(width, width), *conv_relu(width, width), *conv_relu(width, width, 2))
            for _ in range(levels)
        )
        self.gate_down = nn.ModuleList(Eca() for _ in range(levels))  # on x[i, 0] → x[i+1, 0]
        self.up = nn.ModuleDict(
            {f"{k - j}_{j}": Up(j, width) for k in range(1, levels + 1) for j in range(1, k + 1)}
        )  # up["i_j"] builds x[i, j]
        self.gate_exit = nn.ModuleList(Eca() for _ in range(levels))
        self.exits = nn.ModuleList(separable(width, 1) for _ in range(levels))
        self.iqam = Iqam(PATCH_SIZE[codec], robust=iqam == "robust")
        self._init_weights()

    def _init_weights(self):
        # He init, zero bias. PyTorch's default conv init is ~2.4× too small per ReLU layer, so after the
        # ~10 layers to an exit the features were bias-dominated and training barely moved in minutes.
        attention = {id(m.conv) for m in self.modules() if isinstance(m, Eca)}  # keep ECA's default
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and id(module) not in attention:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, image: torch.Tensor, threshold: torch.Tensor):
        return super().forward(image, threshold)  # torch.export names the graph inputs after these args

    # --- the network: the chain's stages, heads and score -----------------------------------------
    @property
    def num_exits(self) -> int:
        return self.levels

    def run_stage(self, k: int, state):
        """Stage k (0-based) computes anti-diagonal k + 1. state: the image (k = 0), else the previous
        stage's (image, nodes in the order _stage adds them)."""
        if k == 0:
            image, nodes = state, {(0, 0): self.stem(state)}
        else:
            image, *values = state
            nodes = dict(zip(_node_keys(k), values))
        self._stage(k + 1, nodes)
        return (image, *nodes.values())

    def run_head(self, k: int, state) -> torch.Tensor:
        image, top = state[0], state[-1]  # the newest node is x[0, k + 1]
        return self._exit(k + 1, top, image)

    def _decision(self, out: torch.Tensor) -> torch.Tensor:
        return self.iqam(out).min()

    def _stage(self, k: int, nodes: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
        """Add the nodes of anti-diagonal k to `nodes` and return the top-row feature x[0, k]."""
        nodes[(k, 0)] = self.down[k - 1](self.gate_down[k - 1](nodes[(k - 1, 0)]))
        for j in range(1, k + 1):
            i = k - j
            skips = [nodes[(i, jj)] for jj in range(j)]
            nodes[(i, j)] = self.up[f"{i}_{j}"](skips, nodes[(i + 1, j - 1)])
        return nodes[(0, k)]

    def _exit(self, k: int, top: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.exits[k - 1](self.gate_exit[k - 1](top)) + image  # global residual

    def quality(self, image: torch.Tensor) -> torch.Tensor:
        """IQAM score per image, (B,)."""
        return self.iqam(image)

    # --- hooks edgekit reads ----------------------------------------------------------------------
    def example_inputs(self):
        torch.manual_seed(0)
        image = torch.rand(1, 1, 64, 64)
        return image, torch.tensor(self.threshold, dtype=torch.float32)

    def dynamic_shapes(self):
        """Named dynamic H and W (strings, as in manifest.json), in torch.export's dict form, which needs
        every forward argument as a key. torch.export needs no divisibility constraint here: it exports
        with plain dims (derived `32 * Dim(...)` dims also work but name the ONNX dims "32*height_blocks"
        and export no faster). H and W must still be multiples of 2**levels at run time; other sizes fail
        in the runtime (ConvTranspose/Concat shape mismatch)."""
        return {"image": {2: "height", 3: "width"}, "threshold": None}

    def tuning_knobs(self):
        """`edgekit tune`: the IQAM threshold. Lower stops earlier; 2.0 is above any IQAM score (every exit
        runs: the costliest, best-quality setting the budget is measured from)."""
        return [{"input": "threshold", "kind": "exit_threshold", "path_output": "exit_index",
                 "candidates": [round(0.05 * i, 2) for i in range(21)] + [2.0], "costliest": 2.0}]

    def validation_feeds(self):
        from edgekit.zoo.rbqe_feeds import feeds_for_every_exit

        return feeds_for_every_exit(self)

    def calibration_feeds(self, count: int):
        """INT8 calibration: crops of the JPEG-compressed training photos (edgekit.zoo.rbqe_task)."""
        from edgekit.zoo.rbqe_task import calibration_feeds

        return calibration_feeds(count, self.threshold)

    def task_metric(self):
        """INT8/pruning budget: PSNR against the clean held-out photos (edgekit.validation.metrics.TaskMetric)."""
        from edgekit.zoo.rbqe_task import task_metric

        return task_metric(self.threshold)


def _node_keys(diagonals: int) -> list[tuple[int, int]]:
    """The nodes after anti-diagonals 0..diagonals, in the order Rbqe._stage adds them."""
    keys = [(0, 0)]
    for k in range(1, diagonals + 1):
        keys += [(k, 0), *((k - j, j) for j in range(1, k + 1))]
    return keys


def load_weights(model: Rbqe, weights: str) -> None:
    """Load "default" (the shipped checkpoint) or a state-dict path into `model`; raises SourceError."""
    if weights == "default":
        path = SHIPPED_WEIGHTS.get((model.codec, model.width, model.levels))
        if path is None:
            shipped = ", ".join(f"codec={c} width={w} levels={n}" for c, w, n in SHIPPED_WEIGHTS)
            raise SourceError(
                f"zoo:rbqe: no shipped checkpoint for codec={model.codec} width={model.width} "
                f"levels={model.levels} (shipped: {shipped}); pass weights=none or weights=PATH.pt"
            )
    else:
        path = Path(weights)
    if not path.is_file():
        raise SourceError(f"zoo:rbqe: weights file {str(path)!r} not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise SourceError(
            f"zoo:rbqe: {path.name} does not fit width={model.width} levels={model.levels}: {first}"
        ) from None


@register_zoo(
    "rbqe",
    "RBQE blind JPEG/HEVC enhancement: UNet++ with 5 IQAM-gated early exits (4 nested If); iqam=robust|paper",
    tiny={"width": 4, "weights": "none"},
)
def build_rbqe(
    width: int = 32, levels: int = 5, codec: str = "jpeg", weights: str = "default", seed: int = 0,
    iqam: str = "robust",
) -> Rbqe:
    """Build RBQE. weights: "default" (shipped checkpoint: codec=jpeg, width=32, levels=5), "none" (random
    init from `seed`) or a path to a state dict. iqam: "robust" (default: rbqe_iqam.QUIET_RMS, decisions that
    survive int8 noise at the paper's fp32 quality, benchmarks/README.md) or "paper" (Xing et al.). Raises
    SourceError for a checkpoint that does not fit.

    The model comes back frozen (eval, requires_grad False): with trainable parameters, tracing each
    nested torch.cond also traces its backward and torch.export took ~9× longer (15 s → 135 s for the
    tiny model). Call `model.train().requires_grad_(True)` to train or to trace autograd (pruning).
    """
    torch.manual_seed(seed)
    model = Rbqe(width=width, levels=levels, codec=codec, iqam=iqam)
    if weights != "none":
        load_weights(model, weights)
    return model.eval().requires_grad_(False)


def exit_macs(model: Rbqe, height: int = 512, width: int = 512) -> list[int]:
    """Multiply-accumulates of the convolutions on the path to each exit (IQAM excluded), via hooks."""
    counts: list[int] = []

    def count(module, inputs, output):
        if isinstance(module, nn.ConvTranspose2d):
            kernel = module.weight[0].numel()  # (out/groups)·kh·kw per input element
            counts.append(inputs[0].numel() * kernel)
        else:
            per_output = module.weight[0].numel()  # (in/groups)·kh·kw
            counts.append(output.numel() * per_output)

    convs = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)
    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, convs)]
    try:
        image = torch.zeros(1, 1, height, width)
        totals = []
        with torch.no_grad():
            nodes = {(0, 0): model.stem(image)}
            for k in range(1, model.levels + 1):
                model._exit(k, model._stage(k, nodes), image)
                totals.append(sum(counts))
    finally:
        for handle in handles:
            handle.remove()
    return totals
