"""The export pipeline: source → ONNX (+ `model.pt2` reference) → targets → validation → bundle.

Each step is a stage function from `edgekit.export`; this module only sequences them inside a staged
bundle directory, so a failure at any point leaves nothing at `--out`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgekit.bundle import Bundle, Manifest, finalize_artifacts, staged_bundle, write_json_atomic
from edgekit.calibration.stage import QUANTIZERS, stage_int8
from edgekit.errors import EdgekitError, ExportError, ValidationFailed
from edgekit.export import cached
from edgekit.export.cache import ExportCache
from edgekit.export.controlflow import check_control_flow_kept, control_flow_counts, load_onnx
from edgekit.export.keep_exits import stage_keep_exits
from edgekit.export.targets import TARGETS, BuildContext
from edgekit.validation.parity import artifact_precision, failure_message, validate_export
from edgekit.sources import ModelSource
from edgekit.sources.onnx_fix import pinned_record
from edgekit.specs import TensorSpec, dtype_name
from edgekit.ui import SILENT, Reporter
from edgekit.validation.compare import RuntimeValidation, Tolerance

DEFAULT_TARGETS = ("onnx", "openvino")
QUANTIZED = ("int8", "mixed")  # precisions whose model.onnx is the int8 Q/DQ graph (mixed: + bf16 on OpenVINO)
ADAPTER_FILE = "adapter.safetensors"  # a pruned bundle keeps its task file: the reference is rebuilt from it


@dataclass
class ExportOptions:
    targets: tuple[str, ...] = DEFAULT_TARGETS
    precision: str = "fp32"
    validate: bool = True
    samples: int = 8
    tolerance: Tolerance | None = None  # None: the precision's default (DESIGN.md §7)
    extra_feeds: list[dict] = field(default_factory=list)  # --data feeds
    target_options: dict = field(default_factory=dict)  # e.g. {"trt_arch": [...]}
    force: bool = False
    opset: int = 18
    calib: str | None = None  # --calib: folder, .npz or file.py:fn (None: the model's calibration_feeds)
    calib_samples: int = 64
    adapter: Path | None = None  # --adapter: a pruning task file (edgekit prune) applied to the source
    slim: bool = True  # clean the exported graph with OnnxSlim (export/cleanup.py), If/Loop kept
    reuse: Path | None = None  # `edgekit quantize`: take the fp32 ONNX (+ model.pt2) from this bundle
    max_drop: float | None = None  # --max-drop: int8 accuracy budget on `metric`
    metric: str | None = None  # --metric: psnr | si_sdr | cosine | FILE.py:fn (None: the model's own)
    cache: bool = True  # reuse ONNX, target builds and reference outputs from the export cache (export/cache.py)
    verify: bool = True  # check the `reuse` bundle's files against their sha256 (--no-verify: containment only)
    keep_exits: tuple[int, ...] | None = None  # --keep-exits: values of the exit knob's output to keep (export/keep_exits.py)
    auto_shapes: tuple[str, ...] = ()  # --auto-shape NAME:DIMS: the input shape --precision auto times at
    quantizer: str = "edgekit"  # --quantizer: who quantizes the openvino IR (calibration/stage.py)


def check_targets(targets, precision: str) -> tuple[str, ...]:
    """Validate target names and that each supports `precision`; keep the user's order, drop repeats."""
    names = tuple(dict.fromkeys(targets or DEFAULT_TARGETS))
    for name in names:
        target = TARGETS.get(name)
        if precision not in target.precisions and name != "onnx":
            raise EdgekitError(f"--precision {precision}: target {name} supports {', '.join(target.precisions)}")
    if precision in ("bf16", "mixed") and "openvino" not in names:
        raise EdgekitError(f"--precision {precision}: a precision of the openvino target (add --target openvino)")
    return names


def check_quantizer(quantizer: str, precision: str, targets: tuple[str, ...]) -> None:
    if quantizer not in QUANTIZERS:
        raise EdgekitError(f"--quantizer {quantizer}: not one of {', '.join(QUANTIZERS)}")
    if quantizer == "nncf" and (precision not in QUANTIZED or "openvino" not in targets):
        raise EdgekitError("--quantizer nncf: quantizes the openvino target's IR (needs --precision int8 or mixed "
                           "and --target openvino)")


def export_bundle(source: ModelSource, out: Path, options: ExportOptions, reporter: Reporter = SILENT) -> Bundle:
    """Export `source` into a bundle at `out`; raise ValidationFailed (after writing it) if parity fails."""
    targets = check_targets(options.targets, options.precision)
    check_quantizer(options.quantizer, options.precision, targets)
    out = Path(out)
    log_dir = Path(tempfile.gettempdir()) / "edgekit-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"export-{out.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    failed: list[RuntimeValidation] = []
    prune = None
    if options.adapter is not None:
        source, prune = _stage_adapter(source, options.adapter, reporter)
    with staged_bundle(out, force=options.force) as root:
        cache = ExportCache.open(options.cache)
        if cache is not None and source.kind != "onnx":  # keys the ONNX and the reference's outputs
            cache = replace(cache, source_key=cache.onnx_key(source, options.opset, options.slim, options.adapter))
        artifacts, control_flow, reference = _stage_onnx(source, root, log_path, options, reporter, cache)
        if options.keep_exits:
            control_flow = stage_keep_exits(root, artifacts, source.knobs, options.keep_exits, reporter)
        if prune is not None:
            shutil.copyfile(options.adapter, root / ADAPTER_FILE)
            artifacts["adapter"] = {"path": ADAPTER_FILE}
        int8 = stage_int8(source, root, artifacts, options, reporter) if options.precision in QUANTIZED else None
        quantize = int8.record if int8 is not None else None
        if quantize is not None and options.reuse is not None and not options.verify:
            quantize["source_verified"] = False  # quantized from files nobody checked (--no-verify)
        onnx_model = load_onnx(root / "model.onnx", load_external_data=False)
        outputs = output_specs(onnx_model)
        for name in targets:
            if name == "onnx":
                continue
            target_options = {"trt_example_shapes": {k: list(v.shape) for k, v in source.example_feed().items()},
                              **options.target_options}
            ctx = BuildContext(root, root / "model.onnx", options.precision, target_options, log=reporter.note)
            nncf = name == "openvino" and int8 is not None and options.quantizer == "nncf"
            with reporter.stage(f"{name}: build ({options.precision}{', NNCF' if nncf else ''})"):
                artifacts[name] = (int8.nncf_openvino(ctx) if nncf
                                   else cached.target_build(cache, name, ctx, TARGETS.get(name).build))
        validation = {}
        if options.validate:
            validation = validate_export(source, root, artifacts, outputs, options, reporter, cache=cache)
            failed = [v for v in validation.values() if not v]
        manifest = Manifest(
            source={"spec": source.spec, "kind": source.kind, "sha256": source.sha256, **pinned_record(source)},
            inputs=source.inputs,
            outputs=outputs,
            control_flow=control_flow,
            pipeline={"prune": prune, "quantize": quantize},
            artifacts=finalize_artifacts(root, artifacts),
            validation={k: v.to_json() for k, v in validation.items()},
            reference=reference,
            knobs=[k.to_json() for k in source.knobs],
        )
        write_json_atomic(root / "manifest.json", manifest.to_json())
    log_path.unlink(missing_ok=True)
    bundle = Bundle(out, manifest)
    if failed:
        raise ValidationFailed(failure_message(failed), validation)
    return bundle


def _stage_adapter(source: ModelSource, adapter: Path, reporter) -> tuple[ModelSource, dict]:
    """Rebuild the pruned model from the source and a task file of `edgekit prune`."""
    if source.module is None:
        raise EdgekitError(f"--adapter: {source.spec} is not a PyTorch module source (a pruning task file "
                           f"applies to the zoo/file/module source it was made from)")
    if not Path(adapter).is_file():
        raise EdgekitError(f"--adapter: {adapter} does not exist")
    from edgekit.pruning import apply_adapter

    with reporter.stage(f"prune: apply {Path(adapter).name}"):
        module, block = apply_adapter(source.module, Path(adapter), source.sha256)
    from edgekit.sources import module_validation_feeds

    return replace(source, module=module, validation_feeds=module_validation_feeds(module)), block


def _stage_onnx(source, root, log_path, options, reporter, cache=None):
    """Write model.onnx (and model.pt2 for torch sources); return artifacts, control flow, reference."""
    artifacts: dict = {}
    if options.reuse is not None:
        return _reuse_onnx(Bundle.load(options.reuse, verify=options.verify), root, reporter)
    if source.kind == "onnx":
        with reporter.stage("onnx: copy source"):
            import onnx

            from edgekit.sources.files import onnx_source_model

            model, has_external = onnx_source_model(source)
            # a source that keeps its weights outside the graph gets the same in the bundle, small tensors too
            onnx.save_model(model, str(root / "model.onnx"), save_as_external_data=has_external,
                            location="model.onnx.data", size_threshold=0)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        artifacts["onnx"] = _onnx_entry(root, opset)
        return artifacts, control_flow_counts(model), {"runtime": "onnxruntime", "artifact": "onnx"}

    key = cache.source_key if cache is not None else None
    return cached.onnx_stage(cache, key, root, reporter, "torch.export → onnx",
                             lambda: _export_torch(source, root, log_path, options, reporter))


def _export_torch(source, root, log_path, options, reporter):
    """torch.export → model.onnx (cleaned) + model.pt2: the stage the export cache keeps."""
    from edgekit.export.onnx import onnx_from_torch

    artifacts: dict = {}

    with reporter.stage("torch.export → onnx"):
        exported = onnx_from_torch(source, root / "model.onnx", log_path, opset=options.opset)
    import torch

    try:
        torch.export.save(exported.exported, str(root / "model.pt2"))
    except Exception as exc:  # the program exported but torch cannot serialize one of its nodes
        reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:300]
        raise ExportError(f"{source.spec}: saving the torch.export program (model.pt2, the reference) failed: "
                          f"{type(exc).__name__}: {reason}") from exc
    artifacts["torch"] = {"path": "model.pt2", "torch_version": torch.__version__.split("+")[0]}
    artifacts["onnx"] = _onnx_entry(root, exported.opset)
    from edgekit.export.cleanup import clean_onnx

    with reporter.stage("onnx: clean the graph" + (" (onnxslim)" if options.slim else "")):
        artifacts["onnx"].update(clean_onnx(root / "model.onnx", options.slim, log=reporter.note))
    model = load_onnx(root / "model.onnx", load_external_data=False)
    check_control_flow_kept(exported.torch_control_flow, model, source.spec)
    return artifacts, control_flow_counts(model), {"runtime": "torch", "artifact": "torch"}


def _reuse_onnx(bundle: Bundle, root: Path, reporter):
    """Copy an fp32 bundle's ONNX (and model.pt2) instead of exporting again (`edgekit quantize`)."""
    m = bundle.manifest
    if artifact_precision(m.artifacts["onnx"]) != "fp32":
        raise EdgekitError(f"{bundle.path}: its model.onnx is {artifact_precision(m.artifacts['onnx'])}; "
                           f"quantize an fp32 bundle")
    artifacts = {}
    with reporter.stage(f"onnx: reuse {bundle.path}"):
        for key in ("onnx", "torch"):
            if key in m.artifacts:
                entry = dict(m.artifacts[key])
                bundle.verified_path(entry, key)  # contained and matching its sha256 (unless --no-verify)
                for field_name in ("path", "data"):
                    if field_name in entry:
                        shutil.copyfile(bundle.file(entry[field_name], key), root / entry[field_name])
                artifacts[key] = {k: v for k, v in entry.items() if k not in ("sha256", "size_bytes")}
    return artifacts, m.control_flow, m.reference


def source_from_bundle(bundle: Bundle):
    """The model a bundle was exported from, for `edgekit quantize`: the original spec when it still
    resolves to the same weights (a zoo model keeps its hooks: calibration data, task metric), else the
    bundle's own model.pt2 (or model.onnx for ONNX sources). Returns (source, adapter file or None)."""
    from edgekit.sources import resolve_source, zoo_source_of

    m = bundle.manifest
    adapter = bundle.artifact_path("adapter") if "adapter" in m.artifacts else None
    source = zoo_source_of(m.source)  # bundles are data: only an installed zoo model is rebuilt, never a file
    if source is not None and source.sha256 == m.source.get("sha256"):
        return source, adapter
    key = "torch" if "torch" in m.artifacts else "onnx"
    source = resolve_source(str(bundle.artifact_path(key)))
    return replace(source, spec=m.source.get("spec", source.spec)), None


def _onnx_entry(root: Path, opset) -> dict:
    entry = {"path": "model.onnx", "opset": opset}
    if (root / "model.onnx.data").exists():
        entry["data"] = "model.onnx.data"
    return entry


def output_specs(model) -> list[TensorSpec]:
    import onnx

    specs = []
    for value in model.graph.output:
        tensor_type = value.type.tensor_type
        shape = tuple(
            int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or f"{value.name}_{i}")
            for i, d in enumerate(tensor_type.shape.dim)
        )
        specs.append(TensorSpec(value.name, shape, dtype_name(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))))
    return specs
