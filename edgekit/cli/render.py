"""Rich rendering of command results (validation tables, bundle inspection) on stderr."""

from __future__ import annotations

from rich.table import Table

from edgekit.ui import console


def print_precision_auto(record: dict | None) -> None:
    """`export --precision auto`: every candidate, its validation, time and metric drop, and the choice."""
    if not record:
        return
    table = Table(title=f"--precision auto ({record['runtime']}, medians of {record['rounds']})")
    for col in ("precision", "status", "ms", "metric drop", "note"):
        table.add_column(col)
    for c in record["candidates"]:
        colour = {"passed": "green", "failed": "red", "skipped": "yellow"}[c["status"]]
        drop = f"{c['metric']['metric']} {c['metric']['drop']:+.4g}" if c.get("metric") else "-"
        name = c["precision"] + (f"+{c['quantizer']}" if "quantizer" in c else "")
        chosen = c["precision"] == record["chosen"] and c.get("quantizer", "edgekit") == record.get("quantizer", "edgekit")
        table.add_row(name + (" ← chosen" if chosen else ""), f"[{colour}]{c['status']}[/]", f"{c['ms']:.2f}" if "ms" in c else "-",
                      drop, c.get("reason") or "")
    console.print(table)
    console.print(record["why"])


def print_validation(block: dict) -> None:
    if not block:
        return
    table = Table(title="validation")
    for col in ("runtime", "precision", "status", "samples", "max abs err", "rel L2", "paths"):
        table.add_column(col)
    for name, v in block.items():
        colour = {"passed": "green", "failed": "red", "skipped": "yellow"}[v["status"]]
        if v["status"] == "skipped":
            table.add_row(name, "-", f"[{colour}]skipped[/]: {v.get('reason')}", "-", "-", "-", "-")
            continue
        paths = "; ".join(f"{k}: {','.join(map(str, vals))}" for k, vals in v.get("paths", {}).items())
        table.add_row(name, v.get("precision", "fp32"), f"[{colour}]{v['status']}[/]", str(v["samples"]),
                      f"{v['max_abs_err']:.2e}" if v["max_abs_err"] is not None else "inf",
                      f"{v['max_rel_l2']:.2e}" if v["max_rel_l2"] is not None else "inf", paths or "-")
    console.print(table)
    for name, v in block.items():
        for failure in v.get("failures", [])[:5]:
            console.print(f"  [red]{name}[/]: {failure}")


KEY_LAYERS = ("CONDITION", "TRIP_LIMIT", "RECURRENCE", "LOOP_OUTPUT", "ITERATOR", "QUANTIZE", "DEQUANTIZE")


def print_inspect(info: dict) -> None:
    onnx = info.get("onnx")
    manifest = info.get("manifest")
    if manifest:
        console.print(f"[bold]bundle[/] {info['bundle']}  source: {manifest['source'].get('spec')}")
        table = Table(title="artifacts")
        for col in ("artifact", "file", "precision", "size MB", "details"):
            table.add_column(col)
        for key, entry in manifest["artifacts"].items():
            for e in entry if isinstance(entry, list) else [entry]:
                details = ", ".join(f"{k}={v}" for k, v in e.items()
                                    if k in ("opset", "compute_capability", "builder", "openvino_version", "torch_version",
                                             "quantizer", "inference_precision"))
                if e.get("quantized"):
                    q = e["quantized"]
                    details += (f"; int8 {q['quantized']}/{q['total']} compute ops "
                                f"({q['quantized_in_subgraphs']} in If/Loop bodies)")
                if e.get("layers"):
                    # the most frequent layer types, plus every control-flow and Q/DQ type whatever its count
                    shown = list(e["layers"])[:6] + [k for k in e["layers"] if k in KEY_LAYERS]
                    details += "; layers: " + ", ".join(f"{k}×{e['layers'][k]}" for k in dict.fromkeys(shown))
                table.add_row(key, e["path"], e.get("precision", "-" if key == "testdata" else "fp32"),
                              f"{e.get('size_bytes', 0) / 1e6:.2f}", details)
        console.print(table)
        print_validation(manifest.get("validation", {}))
    if onnx:
        io = Table(title=f"{onnx['path']} · opset {onnx['opset']} · {onnx['parameters']:,} parameters · "
                         f"{onnx['size_bytes'] / 1e6:.2f} MB")
        for col in ("", "name", "shape", "dtype"):
            io.add_column(col)
        for role in ("inputs", "outputs"):
            for s in onnx[role]:
                io.add_row(role[:-1], s["name"], "×".join(map(str, s["shape"])) or "scalar", s["dtype"])
        console.print(io)
        cf = onnx["control_flow"]
        console.print(f"control flow: If {cf['If']} (nesting depth {onnx['if_nesting_depth']}), Loop {cf['Loop']}")
        console.print("ops: " + ", ".join(f"{k}×{v}" for k, v in onnx["ops"].items()))


def print_boundaries(profile: dict) -> None:
    """The control-flow boundary profile of `inspect --runtime openvino`."""
    feed = ", ".join([*(f"{k}={v}" for k, v in profile["feed"].items()),
                      *(f"{k} {'×'.join(map(str, v))}" for k, v in profile.get("shapes", {}).items())])
    table = Table(title=f"OpenVINO {profile['openvino_version']} ({profile['precision']}): control-flow "
                        f"boundaries on the path of {feed or 'the first sample'}")
    for col in ("node", "op", "depth", "branch", "ms", "body ms", "hand-over ms", "in: tensors / MiB",
                "reorders out: n / ms", "reorders in: n / ms"):
        # nested If names share long prefixes (getitem_1_false_graph_0__false_graph_0...): wrap, don't cut
        table.add_column(col, justify="right" if col not in ("node", "op", "branch") else "left",
                         overflow="fold" if col == "node" else "ellipsis")
    for b in profile["boundaries"]:
        branch = b["branch"] + (f" ×{b['iterations']}" if b["op"] != "If" else "")
        out, inside = b["reorders_outside"], b["reorders_inside"]
        table.add_row(b["node"], b["op"], str(b["depth"]), branch, f"{b['ms']:.2f}", f"{b['body_ms']:.2f}",
                      f"{b['overhead_ms']:.2f}", f"{b['handed_in']['tensors']} / {b['handed_in']['mib']:.1f}",
                      f"{len(out)} / {sum(r['ms'] for r in out):.2f}",
                      f"{len(inside)} / {sum(r['ms'] for r in inside):.2f}")
    console.print(table)
    if not profile["boundaries"]:
        console.print("no If/Loop on this path")
        return
    console.print(f"wall {profile['wall_ms']:.2f} ms; boundaries {profile['boundary_ms']:.2f} ms "
                  f"({profile['boundary_share']:.0%}): hand-over {profile['handover_ms']:.2f} ms, "
                  f"reorders {profile['reorder_ms']:.2f} ms (medians of {profile['rounds']} rounds)")
