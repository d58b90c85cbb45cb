"""`edgekit export`: a model source to a bundle (ONNX plus compiled targets), validated against the reference."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.common import (AsJson, Atol, Calib, CalibSamples, Force, JsonOut, MaxDrop, Metric, RelL2, Rtol,
                                Quantizer, Samples, TrtArch, UseCache, apply_cache_flag, check_max_drop, check_metric,
                                default_name, export_and_report, split_values, tolerance_from)
from edgekit.errors import EdgekitError
from edgekit.ui import Reporter, console


def parse_exits(text: str | None) -> tuple[int, ...] | str | None:
    """`--keep-exits 0,4` → (0, 4), `auto` → "auto"; one clear error for anything else."""
    if text is None or text.strip() == "auto":
        return text and "auto"
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        values = ()
    if not values:
        raise EdgekitError(f"--keep-exits {text!r}: give the exit output's values to keep, comma-separated (e.g. 0,4)")
    return values


def export_command(
    source: str = typer.Argument(..., help="zoo:NAME, file.py:factory, package.module:attr, model.pt2 or model.onnx"),
    target: Optional[List[str]] = typer.Option(None, "--target", "-t", help="onnx, openvino, tensorrt, ort-mobile, executorch (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Bundle directory (default: bundles/<name>)."),
    input: Optional[List[str]] = typer.Option(None, "--input", "-i", help="NAME:1x3xHxW:float32 (repeatable)."),
    dynamic: Optional[List[str]] = typer.Option(None, "--dynamic", help="NAME:AXIS[,AXIS] makes axes dynamic."),
    fix: Optional[List[str]] = typer.Option(
        None, "--fix", help="ONNX sources: NAME=VALUE pins a scalar input; the If nodes it decides are folded "
                            "(repeatable; recorded in the manifest)."),
    precision: str = typer.Option(
        "fp32", help="fp32, fp16 (compiled targets), int8 (needs calibration data), bf16 or mixed (openvino: the "
                     "fp32 / int8 model computed in bf16 on CPUs with bf16 math; gated by the task metric), or auto "
                     "(onnx + openvino: each of those validated, the fastest on this machine kept)."),
    calib: Calib = None,
    calib_samples: CalibSamples = 64,
    max_drop: MaxDrop = None,
    metric: Metric = None,
    quantizer: Quantizer = "edgekit",
    adapter: Optional[Path] = typer.Option(
        None, "--adapter", help="Pruning task file (edgekit prune): export the pruned model it describes."),
    keep_exits: Optional[str] = typer.Option(
        None, "--keep-exits", help="Early-exit models: the exits to keep, as values of the exit output (e.g. 0,4 "
                                   "for exit_index 0 and 4); the others' If nodes leave the graph. auto (with "
                                   "--tune-budget): the exits the tuned policy takes on the data."),
    auto_shape: Optional[List[str]] = typer.Option(
        None, "--auto-shape", help="--precision auto: time the candidates with this input resized, NAME:DIMS (e.g. "
                                   "image:1x1x256x256; default: the model's task data, else its example)."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check every artifact against the reference."),
    slim: bool = typer.Option(True, "--slim/--no-slim", help="Clean the ONNX with OnnxSlim (If/Loop kept) before compiling."),
    samples: Samples = 8,
    atol: Atol = None,
    rtol: Rtol = None,
    rel_l2: RelL2 = None,
    data: Optional[Path] = typer.Option(
        None, help="Validation feeds: .npz (one array per input with a sample axis, or K/NAME keys), .npy or a folder."),
    trt_arch: TrtArch = None,
    trt_shape: Optional[List[str]] = typer.Option(
        None, "--trt-shape", help="TensorRT profile: NAME:SHAPE (fixed) or NAME:MIN,OPT,MAX (repeatable)."),
    ort_platform: str = typer.Option(
        "arm", "--ort-platform", help="ort-mobile: the platform the .ort's fixed optimizations are for: arm (phones) "
                                      "or amd64."),
    et_max_steps: Optional[int] = typer.Option(
        None, "--et-max-steps", help="executorch: the step bound a while_loop runs to (default: the model's "
                                     "`max_steps`); ExecuTorch has no while_loop, so it becomes a scan of this length."),
    opset: int = typer.Option(18, help="ONNX opset."),
    tune_budget: Optional[float] = typer.Option(
        None, "--tune-budget", help="Then `edgekit tune` the bundle's knobs to this metric drop (exit thresholds, "
                                    "step counts; see `edgekit tune --help`)."),
    tune_data: Optional[str] = typer.Option(
        None, "--tune-data", help="Data for --tune-budget (default: a zoo model's own task data)."),
    force: Force = False,
    cache: UseCache = True,
    as_json: AsJson = False,
):
    """Export a model to a bundle: ONNX plus compiled targets, validated against the reference."""
    from edgekit.bundle import check_destination
    from edgekit.pipeline import ExportOptions, check_quantizer, check_targets
    from edgekit.sources import resolve_source
    from edgekit.sources.onnx_fix import parse_fixes
    from edgekit.specs import parse_dynamic_spec, parse_input_spec, parse_profile_spec
    from edgekit.validation.compare import load_npz_feeds

    json_out = JsonOut(as_json)
    apply_cache_flag(cache)
    targets = check_targets(split_values(target), "fp32" if precision == "auto" else precision)
    if (max_drop is not None or metric is not None) and precision not in ("int8", "mixed", "bf16", "auto"):
        raise EdgekitError("--max-drop/--metric apply to --precision int8, mixed, bf16 or auto")
    check_max_drop(max_drop)
    if precision == "auto":
        if quantizer != "edgekit":
            raise EdgekitError("--quantizer: --precision auto tries both quantizers on the openvino target")
    else:
        check_quantizer(quantizer, precision, targets)
    inputs = [parse_input_spec(s) for s in input or []]
    fixes = parse_fixes(fix)
    dynamic_axes = dict(parse_dynamic_spec(s) for s in dynamic or [])
    out = out or Path("bundles") / default_name(source)
    check_destination(out, force)
    if "ort-mobile" in targets and ort_platform not in ("arm", "amd64"):
        raise EdgekitError(f"--ort-platform {ort_platform!r}: choose arm or amd64")
    if "tensorrt" in targets and trt_arch:
        from edgekit.export.trt_compat import parse_arch_list

        parse_arch_list(trt_arch)  # a bad arch fails now, not after the export
    reporter = Reporter()
    with reporter.stage(f"resolve {source}"):
        model = resolve_source(source, inputs, dynamic_axes, fixes)
    check_metric(metric, model.module)
    options = ExportOptions(
        targets=targets, precision=precision, validate=validate, samples=samples,
        tolerance=tolerance_from(atol, rtol, rel_l2), force=force, opset=opset,
        extra_feeds=load_npz_feeds(data, model.inputs) if data else [],
        target_options={**({"trt_arch": trt_arch} if trt_arch else {}),
                        **({"ort_platform": ort_platform} if "ort-mobile" in targets else {}),
                        **_executorch_options(targets, et_max_steps, model.module),
                        **({"trt_shapes": dict(parse_profile_spec(t) for t in trt_shape)} if trt_shape else {})},
        calib=calib, calib_samples=calib_samples, max_drop=max_drop, metric=metric, adapter=adapter, slim=slim,
        cache=cache, keep_exits=parse_exits(keep_exits), auto_shapes=tuple(auto_shape or ()), quantizer=quantizer,
    )
    if auto_shape:
        if precision != "auto":
            raise EdgekitError("--auto-shape: sets what --precision auto times; add --precision auto")
        from edgekit.export.inspect import reshaped_feed

        reshaped_feed(model.example_feed(), list(auto_shape), "--auto-shape")  # a bad NAME:DIMS fails now, not after the exports
    tuning = tune_budget is not None or tune_data is not None
    auto = options.keep_exits == "auto"
    if auto:
        if not tuning:
            raise EdgekitError("--keep-exits auto: keeps the exits the tuned policy takes; add --tune-budget B "
                               "(and --tune-data PATH for a model without its own data)")
        options.keep_exits = None
    export_and_report(model, out, options, reporter, json_out, emit=not tuning)
    if tuning:
        from edgekit.bundle import Bundle
        from edgekit.tuning.stage import apply_tuning, tune_bundle

        if not model.knobs:
            raise EdgekitError(f"--tune-budget: {source} declares no run-time knobs (a tuning_knobs() hook); the "
                               f"bundle at {out} is written, untuned")
        result = tune_bundle(Bundle.load(out), data=tune_data, budget=tune_budget, reporter=reporter,
                             data_flag="--tune-data", validate=not auto, write=not auto)
        if auto:  # export again without the exits the tuned policy never takes; the tuning carries over
            taken = taken_exits(result, model.knobs, out / "model.onnx")
            if taken:
                console.print(f"--keep-exits auto: the tuned policy takes exit(s) {','.join(map(str, taken))}")
                options.keep_exits, options.force = taken, True
                export_and_report(model, out, options, reporter, json_out, emit=False)
            result = apply_tuning(Bundle.load(out), result, reporter)
        json_out.emit(Bundle.load(out).manifest.to_json())
        chosen = result["chosen"]
        console.print(f"[green]tuned:[/] {chosen['setting']} · {result['metric']} drop {chosen['drop']:.4f} ≤ "
                      f"{result['budget']:g} · {result['speedup']:.2f}× the costliest setting ({result['runtime']})")


def taken_exits(result: dict, knobs, onnx_path: Path) -> tuple[int, ...] | None:
    """The exit values the tuned setting takes on the data; None when that is every exit of the graph
    (nothing to drop) or the model has no exit knob."""
    from edgekit.export.controlflow import load_onnx
    from edgekit.export.keep_exits import exit_chain, exit_values

    knob = next((k for k in knobs if k.kind == "exit_threshold"), None)
    if knob is None:
        return None
    taken = tuple(sorted(int(v) for v in result["chosen"]["paths"].get(knob.path_output, {})))
    every = exit_values(exit_chain(load_onnx(onnx_path, load_external_data=False), knob.path_output))
    return taken if taken and list(taken) != every else None


def _executorch_options(targets, max_steps: int | None, module) -> dict:
    if "executorch" not in targets:
        return {}
    from edgekit.export.executorch import declared_max_steps

    if max_steps is not None and max_steps < 1:
        raise EdgekitError(f"--et-max-steps {max_steps}: give a step count of at least 1")
    steps = max_steps or (declared_max_steps(module) if module is not None else None)
    return {"et_max_steps": steps} if steps else {}
