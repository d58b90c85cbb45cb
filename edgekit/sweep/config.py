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
precision = ["fp32", "int8"]
runtime = ["onnxruntime", "openvino"]
shape = ["1x1x256x256"]        # benchmark input shape ("NAME=1x3x64x64"; bare: the first tensor input)
device = ["cpu-2core"]         # where each benchmark must run (default: [local_device])
[axes.feeds]                   # scalar inputs of dynamic models: exit threshold, step count
threshold = [2.0]

[metric]
name = "psnr"                  # default: the model's task_metric(), else output cosine vs fp32
budget = 0.3                   # the largest drop from the fp32 unpruned reference a variant may have

[export]                       # calib, calib_samples, max_drop (int8 accuracy control), samples, validate, opset
[prune]                        # importance, adapter, rank, steps, recover_minutes, allocation
[bench]                        # iters, warmup, threads
```
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import EdgekitError

PRECISIONS = ("fp32", "fp16", "int8")
RUNTIMES = ("torch", "onnxruntime", "openvino", "tensorrt")
RUNTIME_TARGET = {"onnxruntime": "onnx", "openvino": "openvino", "tensorrt": "tensorrt"}
AXES = ("density", "precision", "runtime", "shape", "device", "feeds")
TOP_LEVEL = ("name", "source", "out", "cache", "local_device", "axes", "metric", "export", "prune", "bench")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_SHAPE = re.compile(r"^(?:(?P<name>[A-Za-z_][\w.]*)=)?(?P<dims>\d+(?:x\d+)*)$")


class ConfigError(EdgekitError):
    """A sweep.toml that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class ExportSettings:
    calib: str | None = None
    calib_samples: int = 64
    max_drop: float | None = None  # int8 cells: export --max-drop (sensitive layers stay float)
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
class BenchSettings:
    iters: int = 50
    warmup: int = 5
    threads: int | None = None


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

    def cells(self) -> list[Cell]:
        names = sorted(self.feeds)
        feed_sets = [tuple(zip(names, values)) for values in itertools.product(*(self.feeds[n] for n in names))]
        return [Cell(d, p, r, s, f, dev) for d, p, r, s, f, dev in
                itertools.product(self.density, self.precision, self.runtime, self.shape, feed_sets, self.device)]

    def targets(self) -> tuple[str, ...]:
        """Every export builds the artifacts of all the sweep's runtimes, so runtimes share one export."""
        return tuple(dict.fromkeys(["onnx"] + [RUNTIME_TARGET[r] for r in self.runtime if r in RUNTIME_TARGET]))


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
    _no_unknown(data, TOP_LEVEL, where, "key")
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: `source` is required (a model spec such as \"zoo:toy\")")
    base = path.resolve().parent
    name = _string(data.get("name", path.stem), f"{where}: name")
    local = _label(data.get("local_device", "local"), f"{where}: local_device")
    out = base / data["out"] if "out" in data else Path("sweeps") / name
    out = Path(out).resolve()
    cache = (base / _string(data["cache"], f"{where}: cache")).resolve() if "cache" in data else out / "cache"

    axes = _table(data, "axes", where)
    _no_unknown(axes, AXES, f"{where}: [axes]", "axis")
    density = _list(axes, "density", [1.0], where, _density)
    precision = _list(axes, "precision", ["fp32"], where, _choice(PRECISIONS))
    runtime = _list(axes, "runtime", ["onnxruntime"], where, _choice(RUNTIMES))
    shape = _list(axes, "shape", [None], where, _shape)
    device = _list(axes, "device", [local], where, _label)
    feeds_table = axes.get("feeds", {})
    if not isinstance(feeds_table, dict):
        raise ConfigError(f"{where}: [axes] feeds must be a table of input name = [values]")
    feeds = {k: _list(feeds_table, k, None, where, _scalar, f"axes.feeds.{k}") for k in feeds_table}

    metric_table = _table(data, "metric", where)
    _no_unknown(metric_table, ("name", "budget"), f"{where}: [metric]", "key")
    metric = _string(metric_table["name"], f"{where}: metric.name") if "name" in metric_table else None
    budget = None
    if "budget" in metric_table:
        budget = metric_table["budget"]
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0:
            raise ConfigError(f"{where}: metric.budget = {budget!r}: expected a number ≥ 0 (the largest drop)")
        budget = float(budget)
    if metric and ":" in metric and metric.split(":")[0].endswith(".py"):
        metric = str(base / metric)  # FILE.py:fn, relative to the config like the source

    return SweepConfig(
        path=path, name=name, source=_source(source.strip(), base), out=out, cache=cache, local_device=local,
        density=density, precision=precision, runtime=runtime, shape=shape, device=device, feeds=feeds,
        metric=metric, budget=budget,
        export=_with_calib_path(_settings(data, "export", ExportSettings, where), base),
        prune=_prune_settings(data, where),
        bench=_settings(data, "bench", BenchSettings, where),
    )


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """"image=1x3x64x64" → ("image", (1, 3, 64, 64)); "1x3x64x64" → (None, ...)."""
    match = _SHAPE.match(text)
    return match["name"], tuple(int(d) for d in match["dims"].split("x"))


# --- checks --------------------------------------------------------------------------------------


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


def _no_unknown(table: dict, known, where: str, what: str) -> None:
    unknown = [k for k in table if k not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown {what} {unknown[0]!r} (known: {', '.join(known)})")


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `{key}` must be a table ([{key}])")
    return value


def _list(table: dict, key: str, default, where: str, check, label: str | None = None) -> list:
    label = label or f"axes.{key}"
    if key not in table:
        return list(default)
    values = table[key]
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise ConfigError(f"{where}: {label} is empty")
    checked = [check(v, f"{where}: {label} = {v!r}") for v in values]
    return list(dict.fromkeys(checked))


def _density(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{where}: a density is a fraction of channels kept, in (0, 1]")
    return float(value)


def _choice(options):
    def check(value, where: str) -> str:
        if value not in options:
            raise ConfigError(f"{where}: expected one of {', '.join(options)}")
        return value

    return check


def _shape(value, where: str) -> str:
    if not isinstance(value, str) or not _SHAPE.match(value) or 0 in parse_shape(value)[1]:
        raise ConfigError(f"{where}: expected a shape such as \"1x3x64x64\" or \"image=1x3x64x64\"")
    return value


def _label(value, where: str) -> str:
    if not isinstance(value, str) or not _LABEL.match(value):
        raise ConfigError(f"{where}: a device label is letters, digits and . _ + - (e.g. \"orin-nx\")")
    return value


def _scalar(value, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: a feed value is a number")
    return value


def _string(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string")
    return value


def _prune_settings(data: dict, where: str) -> PruneSettings:
    from edgekit.pruning.plan import ALLOCATIONS  # no torch import

    settings = _settings(data, "prune", PruneSettings, where)
    if settings.allocation not in ALLOCATIONS:
        raise ConfigError(f"{where}: prune.allocation = {settings.allocation!r}: expected one of "
                          f"{', '.join(ALLOCATIONS)}")
    return settings


def _settings(data: dict, key: str, cls, where: str):
    table = _table(data, key, where)
    _no_unknown(table, tuple(cls.__dataclass_fields__), f"{where}: [{key}]", "key")
    for name, value in table.items():
        kind = _KIND[name]
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is str:
            ok = isinstance(value, str) and bool(value)
        else:
            number = (int,) if kind is int else (int, float)
            ok = isinstance(value, number) and not isinstance(value, bool) and value >= (1 if name == "iters" else 0)
        if not ok:
            what = {bool: "true or false", str: "a non-empty string", int: "a non-negative integer",
                    float: "a non-negative number"}[kind]
            raise ConfigError(f"{where}: {key}.{name} = {value!r}: expected {what}")
    return cls(**table)


_KIND = {"calib": str, "calib_samples": int, "max_drop": float, "samples": int, "validate": bool,
         "opset": int,
         "importance": str, "adapter": str, "rank": int, "steps": int, "recover_minutes": float, "allocation": str,
         "iters": int, "warmup": int, "threads": int}
