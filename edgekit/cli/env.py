"""`edgekit env` and `edgekit zoo`: what this machine has, and which reference models are built in."""

from __future__ import annotations

from rich.table import Table

from edgekit.cli.common import AsJson, JsonOut
from edgekit.ui import console


def env_command(as_json: AsJson = False):
    """Versions of Python and every backend, CPU ISA flags, and whether a GPU is visible."""
    from edgekit.env import environment

    out = JsonOut(as_json)
    info = environment()
    out.emit(info)
    table = Table(title="edgekit env", show_header=False)
    for key in ("edgekit", "python", "platform"):
        table.add_row(key, info[key])
    table.add_row("cpu", f"{info['cpu']['model']} · {info['cpu']['cores']} cores · {' '.join(info['cpu']['isa'])}")
    for name, version in info["backends"].items():
        table.add_row(name, version or "[dim]not installed[/]")
    gpu = info["gpu"]
    table.add_row("gpu", ", ".join(f"{d['name']} ({d['compute_capability']})" for d in gpu["devices"])
                  if gpu["visible"] else f"[dim]none ({gpu['reason']})[/]")
    console.print(table)


def zoo_command(as_json: AsJson = False):
    """List the built-in reference models (use them as `zoo:NAME[?key=value,...]`)."""
    from edgekit.zoo import load_zoo

    out = JsonOut(as_json)
    registry = load_zoo()
    rows = []
    for name in registry:
        entry = registry.get(name)
        params = {k: (None if p.default is p.empty else p.default) for k, p in entry.parameters().items()}
        rows.append({"name": name, "description": entry.description, "parameters": params})
    out.emit(rows)
    table = Table(title="edgekit zoo")
    for col in ("model", "description", "parameters"):
        table.add_column(col)
    for row in rows:
        table.add_row(f"zoo:{row['name']}", row["description"],
                      ", ".join(f"{k}={v}" for k, v in row["parameters"].items()))
    console.print(table)
