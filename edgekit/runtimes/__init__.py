"""Runners over every runtime behind one interface (DESIGN.md §4). Adding a backend is one file here
plus one registry line; the module is imported only when that runtime is opened."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from edgekit.bundle import Bundle
from edgekit.errors import BackendUnavailable
from edgekit.registry import Registry
from edgekit.runtimes.base import BaseRunner, Runner


@dataclass(frozen=True)
class RunnerEntry:
    name: str
    target: str  # "module:function" that opens the runner from a bundle
    artifact: str  # the manifest artifact key the runner executes


RUNNERS: Registry[RunnerEntry] = Registry("runtime")
for _entry in (
    RunnerEntry("torch", "edgekit.runtimes.torch:runner_from_bundle", "torch"),
    RunnerEntry("onnxruntime", "edgekit.runtimes.onnxruntime:runner_from_bundle", "onnx"),
    RunnerEntry("openvino", "edgekit.runtimes.openvino:runner_from_bundle", "openvino"),
    RunnerEntry("tensorrt", "edgekit.runtimes.tensorrt:runner_from_bundle", "tensorrt"),
    RunnerEntry("ort-mobile", "edgekit.runtimes.onnxruntime:mobile_runner_from_bundle", "ort-mobile"),
    RunnerEntry("executorch", "edgekit.runtimes.executorch:runner_from_bundle", "executorch"),
):
    RUNNERS.add(_entry.name, _entry)


def open_runner(bundle: Bundle, name: str, **options) -> Runner:
    """Open runtime `name` on the bundle's artifact (options: device, precision, ...).

    Raises BackendUnavailable when the runtime cannot run here, EdgekitError for an unknown name or a
    bundle without that artifact.
    """
    entry = RUNNERS.get(name)
    bundle.artifact(entry.artifact)
    module_name, _, function = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # only for runner modules not written yet
        raise BackendUnavailable(name, f"runner not available ({exc})") from exc
    return getattr(module, function)(bundle, **options)


def runtimes_for(bundle: Bundle) -> list[str]:
    """The runtimes that can execute one of the bundle's artifacts, in registry order."""
    return [n for n in ("torch", "onnxruntime", "openvino", "tensorrt", "ort-mobile", "executorch")
            if RUNNERS.get(n).artifact in bundle.manifest.artifacts]


__all__ = ["RUNNERS", "BaseRunner", "Runner", "open_runner", "runtimes_for"]
