"""Checks for the values of a sweep.toml (config.py): each returns the value or raises `ConfigError` naming
the file, the key and what was expected.
"""

from __future__ import annotations

import re

from edgekit.errors import EdgekitError

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
SHAPE = re.compile(r"^(?:(?P<name>[A-Za-z_][\w.]*)=)?(?P<dims>\d+(?:x\d+)*)$")


class ConfigError(EdgekitError):
    """A sweep.toml that cannot be run; the message names the file and the key."""


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """"image=1x3x64x64" → ("image", (1, 3, 64, 64)); "1x3x64x64" → (None, ...)."""
    match = SHAPE.match(text)
    return match["name"], tuple(int(d) for d in match["dims"].split("x"))


# --- checks --------------------------------------------------------------------------------------


def no_unknown(table: dict, known, where: str, what: str) -> None:
    unknown = [k for k in table if k not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown {what} {unknown[0]!r} (known: {', '.join(known)})")


def table_of(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: `{key}` must be a table ([{key}])")
    return value


def list_of(table: dict, key: str, default, where: str, check, label: str | None = None) -> list:
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


def check_density(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{where}: a density is a fraction of channels kept, in (0, 1]")
    return float(value)


def choice(options):
    def check(value, where: str) -> str:
        if value not in options:
            raise ConfigError(f"{where}: expected one of {', '.join(options)}")
        return value

    return check


def check_shape(value, where: str) -> str:
    if not isinstance(value, str) or not SHAPE.match(value) or 0 in parse_shape(value)[1]:
        raise ConfigError(f"{where}: expected a shape such as \"1x3x64x64\" or \"image=1x3x64x64\"")
    return value


def check_label(value, where: str) -> str:
    if not isinstance(value, str) or not LABEL.match(value):
        raise ConfigError(f"{where}: a device label is letters, digits and . _ + - (e.g. \"orin-nx\")")
    return value


def check_scalar(value, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: a feed value is a number")
    return value


def check_string(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string")
    return value


def settings_of(data: dict, key: str, cls, where: str):
    table = table_of(data, key, where)
    no_unknown(table, tuple(cls.__dataclass_fields__), f"{where}: [{key}]", "key")
    for name, value in table.items():
        kind = KIND[name]
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


KIND = {"calib": str, "calib_samples": int, "max_drop": float, "samples": int, "validate": bool,
         "opset": int, "quantizer": str,
         "importance": str, "adapter": str, "rank": int, "steps": int, "recover_minutes": float, "allocation": str,
         "iters": int, "warmup": int, "threads": int, "native": str, "native_runner": str,
         "budget": float, "data": str, "metric": str}
