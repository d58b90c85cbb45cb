"""Built-in reference models. Importing a zoo module registers its entries in `ZOO`."""

from __future__ import annotations

import importlib

from edgekit.zoo.registry import ZOO, ZooEntry, parse_zoo_spec, register_zoo

# Modules that register zoo entries; imported on first use because they import torch.
ZOO_MODULES = ("edgekit.zoo.toy", "edgekit.zoo.rbqe", "edgekit.zoo.storm")

__all__ = ["ZOO", "ZooEntry", "load_zoo", "parse_zoo_spec", "register_zoo"]


def load_zoo():
    """Import every zoo module (idempotent) and return the registry."""
    for module in ZOO_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency inside the module is a bug: surface it
                raise
    return ZOO
