"""Resolve a model spec (DESIGN.md §3) to a `ModelSource`: the model, its example inputs and input specs.

Spec kinds: `zoo:NAME[?k=v,...]`, `path/to/file.py:factory`, `package.module:attr`, `model.pt2`
(a saved torch.export program) and `model.onnx` (compile/validate only; ONNX Runtime is the reference).

A factory returns a module or `(module, example_inputs)`; the module's optional hooks are listed in
`MODEL_HOOKS` (model.py). `python.py` resolves Python sources, `files.py` .pt2 and .onnx files.
Exports `resolve_source`, `ModelSource`, `MODEL_HOOKS` and `module_validation_feeds`.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import SourceError
from edgekit.sources.files import from_onnx, from_pt2
from edgekit.sources.model import MODEL_HOOKS, ModelSource
from edgekit.sources.python import from_file, from_module_path, from_zoo, module_validation_feeds
from edgekit.specs import TensorSpec

__all__ = ["MODEL_HOOKS", "ModelSource", "module_validation_feeds", "resolve_source", "zoo_source_of"]


def zoo_source_of(manifest_source) -> ModelSource | None:
    """The installed zoo model a bundle's manifest names, or None. Bundles are data, never code: only a
    `zoo:` spec is rebuilt (through the zoo registry, which imports nothing the bundle names); file.py:fn
    and package.module:attr specs in a manifest are never resolved, whatever its `kind` says."""
    if not isinstance(manifest_source, dict) or manifest_source.get("kind") != "zoo":
        return None
    spec = manifest_source.get("spec")
    if not isinstance(spec, str) or not spec.startswith("zoo:"):
        return None
    try:
        return from_zoo(spec, [], {})
    except Exception:  # noqa: BLE001 — the zoo changed since the export: the bundle's own program is used
        return None


def resolve_source(
    spec: str,
    input_specs: list[TensorSpec] | None = None,
    dynamic: dict[str, list[int]] | None = None,
    fixes: dict[str, str] | None = None,
) -> ModelSource:
    """Resolve `spec` to a ModelSource.

    `input_specs` (from `--input`) override the example inputs; `dynamic` (from `--dynamic`) marks axes
    dynamic. Raises SourceError naming the file, factory or input at fault.
    """
    input_specs = list(input_specs or [])
    dynamic = dict(dynamic or {})
    if fixes and not spec.endswith(".onnx"):
        raise SourceError(f"--fix {', '.join(fixes)}: pins inputs of ONNX sources (export to ONNX first, or "
                          f"make the value a constant of your model)")
    if spec.startswith("zoo:"):
        return from_zoo(spec, input_specs, dynamic)
    if spec.endswith(".onnx"):
        return from_onnx(spec, input_specs, fixes)
    if spec.endswith(".pt2"):
        return from_pt2(spec, input_specs, dynamic)
    target, sep, attr = spec.rpartition(":")
    if sep and target.endswith(".py"):
        return from_file(spec, Path(target), attr, input_specs, dynamic)
    if sep and target and attr:
        return from_module_path(spec, target, attr, input_specs, dynamic)
    raise SourceError(
        f"{spec}: not a model spec (expected zoo:NAME, path/file.py:factory, package.module:attr, "
        "model.pt2 or model.onnx)"
    )
