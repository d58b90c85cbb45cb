"""Stages run through the export cache (`export/cache.py`): on a hit their files are copied into the
staging dir and their manifest entries returned; on a miss the stage runs and its output is stored.
`pipeline.py` calls these instead of the stages themselves; with no cache they only run the stage.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from edgekit.export.cache import TARGET_CODE, ExportCache

ONNX_FILES = ("model.onnx", "model.onnx.data", "model.pt2")


def onnx_stage(cache: ExportCache | None, key: str | None, root: Path, reporter, label: str,
               run: Callable[[], tuple[dict, dict, dict]]) -> tuple[dict, dict, dict]:
    """`run()` writes model.onnx/.pt2 into `root` and returns (artifacts, control_flow, reference)."""
    if cache is not None and key is not None:
        start = time.perf_counter()
        hit = cache.get("onnx", key, root)
        if hit is not None:
            reporter.note(f"[green]✓[/] {label}: from the export cache [dim]({time.perf_counter() - start:.1f} s; "
                          f"--no-cache exports again)[/]")
            return hit["artifacts"], hit["control_flow"], hit["reference"]
    artifacts, control_flow, reference = run()
    if cache is not None and key is not None:
        files = [f for f in ONNX_FILES if (root / f).exists()]
        cache.put("onnx", key, root, files,
                  {"artifacts": artifacts, "control_flow": control_flow, "reference": reference})
    return artifacts, control_flow, reference


def target_build(cache: ExportCache | None, name: str, ctx, build: Callable):
    """A target's build (`Target.build(ctx)`): the files it adds to the staging dir and its entry. Only
    targets whose builder code and backend versions the key knows (cache.TARGET_CODE) are cached."""
    if cache is None or name not in TARGET_CODE:
        return build(ctx)
    options = {k: v for k, v in ctx.options.items() if k != "trt_timing_cache"}
    if name == "tensorrt":  # "current" (or no --trt-arch) means this machine's GPU: key the resolved archs
        from edgekit.export.trt_compat import parse_arch_list

        options["trt_arch"] = parse_arch_list(options.get("trt_arch"))  # "sm86,sm89" = ["SM86", "SM89"]
    key = cache.target_key(name, Path(ctx.onnx_path), ctx.precision, options)
    hit = cache.get("target", key, Path(ctx.root))
    if hit is not None:
        ctx.log(f"{name}: reused from the export cache")
        return hit["entry"]
    before = _files(Path(ctx.root))
    entry = build(ctx)
    added = sorted(_files(Path(ctx.root)) - before)
    if all("/" not in f for f in added):  # flat files only (IR, engines); anything else is not cached
        cache.put("target", key, Path(ctx.root), added, {"entry": entry})
    return entry


def reference_outputs(cache: ExportCache | None, samples: list[dict], run: Callable[[dict], dict]) -> list[dict]:
    """The reference's outputs on `samples` (the slow eager PyTorch run), reused for the same source
    (cache.source_key) and the same samples."""
    if cache is None or cache.source_key is None:
        return [run(feed) for feed in samples]
    key = cache.reference_key(cache.source_key, samples)
    hit = cache.get_arrays("reference", key)
    if hit is not None and len(hit) == len(samples):
        return hit
    outputs = [run(feed) for feed in samples]
    cache.put_arrays("reference", key, outputs)
    return outputs


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
