"""Model sources that are Python: `zoo:NAME`, `path/file.py:factory`, `package.module:attr`. The factory runs,
the module's hooks (MODEL_HOOKS) give its example inputs, names, dynamic dims, ranges and validation feeds.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bundle import sha256_file
from edgekit.errors import SourceError
from edgekit.sources.model import ModelSource, example_from_spec, spec_of, state_sha256, to_numpy
from edgekit.tuning.knobs import knobs_from_hook


def from_zoo(spec, input_specs, dynamic) -> ModelSource:
    from edgekit.zoo import load_zoo, parse_zoo_spec

    name, params = parse_zoo_spec(spec)
    entry = load_zoo().get(name)
    model = _call_factory(spec, lambda: entry.build(**params))
    return from_built(spec, "zoo", model, input_specs, dynamic, sha256=None)


def from_file(spec, path: Path, attr: str, input_specs, dynamic) -> ModelSource:
    if not path.is_file():
        raise SourceError(f"{spec}: file {path} does not exist")
    if not attr:
        raise SourceError(f"{spec}: name the factory after the colon, e.g. {path}:build")
    module_name = f"_edgekit_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # the user's file failed to import: report it, it is theirs to fix
        raise SourceError(f"{spec}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise SourceError(f"{spec}: {path} has no {attr!r} (callables there: {', '.join(found) or 'none'})")
    built = _call_factory(spec, lambda: _instantiate(getattr(module, attr)))
    return from_built(spec, "file", built, input_specs, dynamic, sha256=sha256_file(path))


def from_module_path(spec, module_path: str, attr: str, input_specs, dynamic) -> ModelSource:
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise SourceError(f"{spec}: cannot import {module_path}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SourceError(f"{spec}: {module_path} has no attribute {attr!r}")
        obj = getattr(obj, part)
    built = _call_factory(spec, lambda: _instantiate(obj))
    return from_built(spec, "module", built, input_specs, dynamic, sha256=None)


def _instantiate(obj):
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj
    if callable(obj):
        return obj()
    raise SourceError(f"{obj!r} is neither a torch.nn.Module nor a factory")


def _call_factory(spec, build):
    try:
        return build()
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"{spec}: the factory raised {type(exc).__name__}: {exc}") from exc


def from_built(spec, kind, built, input_specs, dynamic, sha256) -> ModelSource:
    import torch

    module, examples = built, None
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], torch.nn.Module):
        module, examples = built
    if not isinstance(module, torch.nn.Module):
        raise SourceError(f"{spec}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    module.eval()
    names = list(getattr(module, "input_names", None) or _forward_params(module))
    if input_specs:
        examples = tuple(example_from_spec(s) for s in input_specs)
        names = [s.name for s in input_specs]
    elif examples is None and callable(getattr(module, "example_inputs", None)):
        examples = module.example_inputs()
    if examples is None:
        raise SourceError(
            f"{spec}: no example inputs: pass --input NAME:SHAPE[:DTYPE] for each input "
            f"({', '.join(names)}), or give the model an example_inputs() method"
        )
    if isinstance(examples, torch.Tensor):
        examples = (examples,)
    examples = tuple(examples)
    if len(names) != len(examples):
        raise SourceError(
            f"{spec}: {len(examples)} example inputs for {len(names)} input names ({', '.join(names)})"
        )
    output_names = list(getattr(module, "output_names", None) or []) or _count_outputs(spec, module, examples)
    dims = _dynamic_dims(spec, module, names, examples, input_specs, dynamic)
    specs = [spec_of(n, t, dims.get(n, {})) for n, t in zip(names, examples)]
    if callable(getattr(module, "input_ranges", None)):
        ranges = module.input_ranges() or {}
        unknown = set(ranges) - set(names)
        if unknown:
            raise SourceError(f"{spec}: input_ranges() names unknown inputs {', '.join(sorted(unknown))}")
        specs = [replace(s, range=tuple(ranges[s.name])) if s.name in ranges else s for s in specs]
    return ModelSource(
        spec=spec,
        kind=kind,
        sha256=sha256 or state_sha256(module),
        inputs=specs,
        example_inputs=examples,
        module=module,
        output_names=output_names,
        dynamic_shapes=dims,
        validation_feeds=module_validation_feeds(module),
        knobs=knobs_from_hook(module, specs, output_names, spec),
    )


def module_validation_feeds(module) -> list[dict[str, np.ndarray]]:
    """The module's `validation_feeds()` as numpy feeds ([] without the hook). They depend on the weights
    (RBQE picks thresholds from its own exit scores), so a pruned module asks again."""
    if not callable(getattr(module, "validation_feeds", None)):
        return []
    from edgekit.sources.feedcache import memo_feeds

    return memo_feeds(module, lambda: [{k: to_numpy(v) for k, v in f.items()} for f in module.validation_feeds()])


def _count_outputs(spec, module, examples) -> list[str]:
    """Run the model once on its example inputs: names its outputs and catches a model that cannot run."""
    import torch

    try:
        with torch.no_grad():
            result = module(*examples)
    except Exception as exc:
        raise SourceError(f"{spec}: running the model on its example inputs failed: "
                          f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    count = len(result) if isinstance(result, (tuple, list)) else 1
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def _forward_params(module) -> list[str]:
    params = inspect.signature(module.forward).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _dynamic_dims(spec, module, names, examples, input_specs, dynamic) -> dict[str, dict[int, Any]]:
    dims: dict[str, dict[int, Any]] = {}
    if callable(getattr(module, "dynamic_shapes", None)) and not input_specs:
        for name, axes in (module.dynamic_shapes() or {}).items():
            dims[name] = dict(axes or {})
    for s in input_specs:
        if s.dynamic_axes:
            dims[s.name] = dict(s.dynamic_axes)
    by_name = dict(zip(names, examples))
    for name, axes in dynamic.items():
        if name not in by_name:
            raise SourceError(f"{spec}: --dynamic names {name!r}, which is not an input ({', '.join(names)})")
        rank = by_name[name].dim()
        for axis in axes:
            if axis >= rank:
                raise SourceError(f"{spec}: --dynamic {name}:{axis}: input {name!r} has only {rank} axes")
            dims.setdefault(name, {}).setdefault(axis, f"{name}_{axis}")
    unknown = set(dims) - set(names)
    if unknown:
        raise SourceError(f"{spec}: dynamic_shapes names unknown inputs {', '.join(sorted(unknown))}")
    return dims
