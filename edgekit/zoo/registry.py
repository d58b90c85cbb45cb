"""The model zoo registry: `zoo:NAME[?key=value,...]` resolves through it (DESIGN.md §3).

Each entry is a factory whose keyword arguments are the spec's query parameters (converted with the
factory's type annotations) and a `tiny` set of arguments that tests use to keep the model fast.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from edgekit.errors import EdgekitError, SourceError
from edgekit.registry import Registry


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable[..., Any]
    description: str
    tiny: dict[str, Any] = field(default_factory=dict)

    def parameters(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.factory).parameters)

    def build(self, **params: str | Any) -> Any:
        """Build the model; string values (from a spec's query) are converted to the factory's types."""
        signature = self.parameters()
        kwargs = {}
        for key, value in params.items():
            if key not in signature:
                valid = ", ".join(signature) or "none"
                raise SourceError(f"zoo:{self.name}: unknown parameter {key!r} (valid: {valid})")
            kwargs[key] = _convert(self.name, key, value, signature[key])
        return self.factory(**kwargs)


def _convert(model: str, key: str, value: Any, param: inspect.Parameter) -> Any:
    if not isinstance(value, str):
        return value
    annotation = param.annotation
    if isinstance(annotation, str):
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation, str)
    if annotation is bool:
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
    elif annotation in (int, float):
        try:
            return annotation(value)
        except ValueError:
            pass
    else:
        return value
    raise SourceError(f"zoo:{model}: parameter {key}={value!r} is not a valid {annotation.__name__}")


ZOO: Registry[ZooEntry] = Registry("zoo model")


def register_zoo(name: str, description: str, tiny: dict[str, Any] | None = None):
    """Decorator: register `factory` as `zoo:name`."""

    def wrap(factory):
        ZOO.add(name, ZooEntry(name, factory, description, dict(tiny or {})))
        return factory

    return wrap


def parse_zoo_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`zoo:rbqe?width=8,weights=none` → ("rbqe", {"width": "8", "weights": "none"})."""
    body = spec[len("zoo:"):]
    name, _, query = body.partition("?")
    params: dict[str, str] = {}
    for item in filter(None, query.replace("&", ",").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SourceError(f"{spec}: bad parameter {item!r} (expected key=value)")
        params[key] = value
    if not name:
        raise EdgekitError(f"{spec}: missing model name (try `edgekit zoo`)")
    return name, params
