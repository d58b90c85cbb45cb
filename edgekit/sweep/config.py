"""`sweep.toml`: what `edgekit sweep` explores. Parsed with `tomllib` and checked before anything heavy is
imported, so a typo costs one red line naming the file and key, not minutes of exports.

```toml
name = "rbqe"                  # default: the file's stem
source = "zoo:rbqe"            # any model spec (DESIGN.md §3); file paths are relative to this file
out = "sweeps/rbqe"            # results + cache; relative to this file (default: ./sweeps/<name>)
cache = "sweeps/cache"         # optional: a stage cache shared between sweeps (default: <out>/cache)
local_device = "cpu-2core"     # the device label of this machine without --ray (default: "local")

[axes]                         # every combination is one cell
density = [1.0, 0.5]           # 1.0: no prune stage
precision = ["fp32", "int8"]   # also fp16, bf16, mixed (openvino) and auto (onnx + openvino: the fastest validated)
runtime = ["onnxruntime", "openvino"]
shape = ["1x1x256x256"]        # benchmark input shape ("NAME=1x3x64x64"; bare: the first tensor input)
device = ["cpu-2core"]         # where each benchmark must run (default: [local_device])
[axes.feeds]                   # scalar inputs of dynamic models: exit threshold, step count
threshold = [2.0]

[metric]
name = "psnr"                  # default: the model's task_metric(), else output cosine vs fp32
budget = 0.3                   # the largest drop from the fp32 unpruned reference a variant may have

[export]                       # calib, calib_samples, max_drop (int8 accuracy control), samples, validate, opset,
                               # quantizer ("edgekit" | "nncf": who quantizes the openvino IR of int8/mixed cells)
[prune]                        # importance, adapter, rank, steps, recover_minutes, allocation
[tune]                         # optional: fit every cell's knobs (exit thresholds, step counts) on its own
                               # bundle and runtime before it is measured (edgekit tune): budget (default: the
                               # metric's), data (default: a zoo model's task data), metric, samples
[bench]                        # iters, warmup, threads; native = "cpp" | "c": time openvino cells with
                               # the C++/C runner (built on the worker host, or native_runner = "PATH" to
                               # a packed runner there); it times the bundle's testdata sample's shape
```
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgekit.sweep.checks import (ConfigError, check_density, check_label, check_scalar, check_shape, check_string,
                                  choice, list_of, no_unknown, settings_of, table_of)

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "mixed", "auto")
OPENVINO_ONLY = ("bf16", "mixed", "auto")  # precisions that need the openvino runtime in the sweep
RUNTIMES = ("torch", "onnxruntime", "openvino", "tensorrt")
RUNTIME_TARGET = {"onnxruntime": "onnx", "openvino": "openvino", "tensorrt": "tensorrt"}
NATIVE = ("cpp", "c")  # bench.native: the runners of examples/cpp and examples/c
AXES = ("density", "precision", "runtime", "shape", "device", "feeds")
TOP_LEVEL = ("name", "source", "out", "cache", "local_device", "axes", "metric", "export", "prune", "tune", "bench")


@dataclass(frozen=True)
class ExportSettings:
    calib: str | None = None
    calib_samples: int = 64
    max_drop: float | None = None  # int8 cells: export --max-drop (sensitive layers stay float)
    quantizer: str = "edgekit"  # int8/mixed cells: export --quantizer (edgekit | nncf)
    samples: int = 8
    validate: bool = True
    opset: int = 18


@dataclass(frozen=True)
class PruneSettings:
    importance: str = "magnitude"
    adapter: str = "splora"
    rank: int = 8
    steps: int = 10  # the defaults of `edgekit prune`
    recover_minutes: float = 2.0
    allocation: str = "uniform"  # or "spatial" (`edgekit prune --allocate`)


@dataclass(frozen=True)
class TuneSettings:
    """[tune]: `edgekit tune` on each cell's bundle and runtime; the cell is then measured at the chosen setting."""

    budget: float | None = None
    data: str | None = None  # relative to the config file; None: the zoo model's task_metric() data
    metric: str | None = None
    samples: int = 64


@dataclass(frozen=True)
class BenchSettings:
    iters: int = 50
    warmup: int = 5
    threads: int | None = None
    native: str | None = None  # "cpp" | "c": openvino cells timed by the native runner's --bench
    native_runner: str | None = None  # a runner binary on the benchmark host (a pack's), instead of building one


@dataclass(frozen=True)
class Cell:
    """One point of the sweep: a variant (density, precision) on a runtime, at a shape and feeds, on a device."""

    density: float
    precision: str
    runtime: str
    shape: str | None  # "NAME=1x3x64x64" / "1x3x64x64" or None (the model's example input)
    feeds: tuple[tuple[str, float], ...]  # scalar overrides, sorted by name
    device: str

    def axes(self) -> dict:
        return {"density": self.density, "precision": self.precision, "runtime": self.runtime,
                "shape": self.shape, "feeds": dict(self.feeds), "device": self.device}


@dataclass
class SweepConfig:
    path: Path
    name: str
    source: str
    out: Path
    cache: Path
    local_device: str
    density: list[float]
    precision: list[str]
    runtime: list[str]
    shape: list[str | None]
    device: list[str]
    feeds: dict[str, list[float]]
    metric: str | None = None
    budget: float | None = None
    export: ExportSettings = field(default_factory=ExportSettings)
    prune: PruneSettings = field(default_factory=PruneSettings)
    bench: BenchSettings = field(default_factory=BenchSettings)
    tune: TuneSettings | None = None  # [tune] present: every cell is tuned before it is measured
    verify: bool = True  # check cached bundles against their sha256 before use (`sweep --no-verify`: not)

    def cells(self) -> list[Cell]:
        names = sorted(self.feeds)
        feed_sets = [tuple(zip(names, values)) for values in itertools.product(*(self.feeds[n] for n in names))]
        return [Cell(d, p, r, s, f, dev) for d, p, r, s, f, dev in
                itertools.product(self.density, self.precision, self.runtime, self.shape, feed_sets, self.device)]

    def targets(self) -> tuple[str, ...]:
        """Every export builds the artifacts of all the sweep's runtimes, so runtimes share one export."""
        return tuple(dict.fromkeys(["onnx"] + [RUNTIME_TARGET[r] for r in self.runtime if r in RUNTIME_TARGET]))


def _check_precisions(precision: list[str], runtime: list[str], where: str) -> None:
    for p in precision:
        if p in OPENVINO_ONLY and "openvino" not in runtime:
            raise ConfigError(f"{where}: axes.precision = {p!r}: a precision of the openvino target; add "
                              f"\"openvino\" to [axes] runtime")
    if "auto" in precision and "tensorrt" in runtime:
        raise ConfigError(f"{where}: axes.precision = 'auto' times its candidates on this machine's OpenVINO; "
                          f"runtime tensorrt can't be timed that way (sweep it at a fixed precision)")


def load_config(path: str | Path) -> SweepConfig:
    """Read and check `path`. Raises ConfigError naming the file and the key at fault."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep config not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    return config_from_dict(data, path)


def config_from_dict(data: dict, path: Path) -> SweepConfig:
    where = str(path)
    no_unknown(data, TOP_LEVEL, where, "key")
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: `source` is required (a model spec such as \"zoo:toy\")")
    base = path.resolve().parent
    name = check_string(data.get("name", path.stem), f"{where}: name")
    local = check_label(data.get("local_device", "local"), f"{where}: local_device")
    out = base / data["out"] if "out" in data else Path("sweeps") / name
    out = Path(out).resolve()
    cache = (base / check_string(data["cache"], f"{where}: cache")).resolve() if "cache" in data else out / "cache"

    axes = table_of(data, "axes", where)
    no_unknown(axes, AXES, f"{where}: [axes]", "axis")
    density = list_of(axes, "density", [1.0], where, check_density)
    precision = list_of(axes, "precision", ["fp32"], where, choice(PRECISIONS))
    runtime = list_of(axes, "runtime", ["onnxruntime"], where, choice(RUNTIMES))
    shape = list_of(axes, "shape", [None], where, check_shape)
    device = list_of(axes, "device", [local], where, check_label)
    feeds_table = axes.get("feeds", {})
    if not isinstance(feeds_table, dict):
        raise ConfigError(f"{where}: [axes] feeds must be a table of input name = [values]")
    feeds = {k: list_of(feeds_table, k, None, where, check_scalar, f"axes.feeds.{k}") for k in feeds_table}
    _check_precisions(precision, runtime, where)

    metric_table = table_of(data, "metric", where)
    no_unknown(metric_table, ("name", "budget"), f"{where}: [metric]", "key")
    metric = check_string(metric_table["name"], f"{where}: metric.name") if "name" in metric_table else None
    budget = None
    if "budget" in metric_table:
        budget = metric_table["budget"]
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0:
            raise ConfigError(f"{where}: metric.budget = {budget!r}: expected a number ≥ 0 (the largest drop)")
        budget = float(budget)
    if metric and ":" in metric and metric.split(":")[0].endswith(".py"):
        metric = str(base / metric)  # FILE.py:fn, relative to the config like the source

    export = _with_calib_path(settings_of(data, "export", ExportSettings, where), base)
    if export.quantizer not in ("edgekit", "nncf"):
        raise ConfigError(f"{where}: export.quantizer = {export.quantizer!r}: expected one of edgekit, nncf")
    if export.quantizer == "nncf" and not ({"int8", "mixed"} & set(precision) and "openvino" in runtime):
        raise ConfigError(f"{where}: export.quantizer = 'nncf' quantizes the openvino IR of int8/mixed cells: "
                          f"add int8 or mixed to [axes] precision and openvino to [axes] runtime")
    return SweepConfig(
        path=path, name=name, source=_source(source.strip(), base), out=out, cache=cache, local_device=local,
        density=density, precision=precision, runtime=runtime, shape=shape, device=device, feeds=feeds,
        metric=metric, budget=budget,
        export=export,
        prune=_prune_settings(data, where),
        bench=_bench_settings(data, where, base),
        tune=_tune_settings(data, where, base) if "tune" in data else None,
    )


def _tune_settings(data: dict, where: str, base: Path) -> TuneSettings:
    settings = settings_of(data, "tune", TuneSettings, where)
    if settings.data is not None and ":" not in settings.data:
        settings = replace(settings, data=str(base / settings.data))  # relative to this file, like the source
    elif settings.data is not None:
        file, _, fn = settings.data.rpartition(":")
        settings = replace(settings, data=f"{base / file}:{fn}")
    return settings


def _bench_settings(data: dict, where: str, base: Path) -> BenchSettings:
    settings = settings_of(data, "bench", BenchSettings, where)
    if settings.native is not None and settings.native not in NATIVE:
        raise ConfigError(f"{where}: bench.native = {settings.native!r}: expected one of {', '.join(NATIVE)}")
    if settings.native_runner is not None:
        if settings.native is None:
            raise ConfigError(f"{where}: bench.native_runner needs bench.native (\"cpp\" or \"c\": the runner's API)")
        settings = replace(settings, native_runner=str(base / settings.native_runner))  # relative to this file
    return settings


def _source(spec: str, base: Path) -> str:
    """Paths in a source spec are relative to the config file, so a sweep runs from any directory."""
    if spec.startswith("zoo:"):
        return spec
    if spec.endswith((".onnx", ".pt2")):
        return str(base / spec)
    file, sep, attr = spec.rpartition(":")
    if sep and file.endswith(".py"):
        return f"{base / file}:{attr}"
    return spec


def _with_calib_path(settings: ExportSettings, base: Path) -> ExportSettings:
    """export.calib (a folder, an .npz or FILE.py:fn) is relative to the config file, like the source."""
    from dataclasses import replace

    if settings.calib is None:
        return settings
    file, sep, fn = settings.calib.rpartition(":")
    calib = f"{base / file}:{fn}" if sep and file.endswith(".py") else str(base / settings.calib)
    return replace(settings, calib=calib)


def _prune_settings(data: dict, where: str) -> PruneSettings:
    from edgekit.pruning.hooks import ALLOCATIONS  # no torch import

    settings = settings_of(data, "prune", PruneSettings, where)
    if settings.allocation not in ALLOCATIONS:
        raise ConfigError(f"{where}: prune.allocation = {settings.allocation!r}: expected one of "
                          f"{', '.join(ALLOCATIONS)}")
    return settings


