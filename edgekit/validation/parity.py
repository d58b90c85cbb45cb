"""Parity of a bundle's artifacts with the reference: the export's validation stage (fresh samples, stored
as testdata/; int8 also measures the task metric) and `edgekit validate` (stored + fresh samples).

Split from `edgekit.pipeline`, which sequences the stages and calls `validate_export` last.
"""

from __future__ import annotations

from edgekit.bundle import Bundle, Manifest
from edgekit.errors import BackendUnavailable, EdgekitError
from edgekit.export.cached import reference_outputs
from edgekit.validation.kept_exits import kept_exits_record, rerouted_failures, split_rerouted
from edgekit.validation.testdata import write_testdata
from edgekit.ui import SILENT, Reporter
from edgekit.validation.compare import DEFAULT_TOLERANCES, RuntimeValidation, Tolerance, make_samples, validate_runtime


def validate_export(source, root, artifacts, outputs, options, reporter, cache=None) -> dict[str, RuntimeValidation]:
    """Validate every artifact's runtime against the reference on fresh samples; store testdata.
    With an export cache (`export/cache.py`), the reference's outputs for the same source and samples are reused."""
    from edgekit.runtimes import RUNNERS

    bundle = Bundle(root, Manifest(source={"spec": source.spec}, inputs=source.inputs, outputs=outputs,
                                   artifacts=artifacts))
    metric = None
    branch_feeds = source.validation_feeds
    if options.precision in ("int8", "bf16", "mixed"):  # reduced precision: the task metric gates (§7)
        from edgekit.validation.metrics import resolve_metric

        metric = resolve_metric(options.metric, source.module, [])
        if hasattr(metric, "targets"):
            # The fp32 branch-driving feeds sit within 1e-4 of a threshold by design, so any int8 error flips
            # them; the ≥ 95% path agreement is measured on the model's real evaluation inputs instead.
            branch_feeds = metric.feeds
    samples = make_samples(source.inputs, source.example_feed(),
                           branch_feeds + list(options.extra_feeds), options.samples)
    from edgekit.validation.metrics import memo_run

    with reporter.stage(f"reference: {source.reference_runtime} on {len(samples)} samples"):
        reference = memo_run(_reference_runner(source, bundle, outputs).run)
        references = reference_outputs(cache, samples, reference)
    samples, references, rerouted = split_rerouted(samples, references, kept_exits_record(artifacts))
    write_testdata(root, list(zip(samples, references)))
    plain = None  # fp32 artifacts of a bf16 export keep the fp32 samples: a sampler's long real inputs drift 2e-5
    fp32_runtimes = [n for n in RUNNERS if RUNNERS.get(n).artifact in artifacts and n != source.reference_runtime
                     and artifact_precision(artifacts[RUNNERS.get(n).artifact]) == "fp32"]
    if branch_feeds is not source.validation_feeds and fp32_runtimes:
        fp32_samples = make_samples(source.inputs, source.example_feed(),
                                    source.validation_feeds + list(options.extra_feeds), options.samples)
        with reporter.stage(f"reference: {source.reference_runtime} on {len(fp32_samples)} fp32 samples"):
            plain = split_rerouted(fp32_samples, reference_outputs(cache, fp32_samples, reference),
                                   kept_exits_record(artifacts))
    baseline = None
    if metric is not None:
        if hasattr(metric, "targets"):
            baseline = metric.mean_score(reference)  # its feeds are among the samples: no new runs
        else:
            metric.feeds = samples  # output similarity: each runtime is compared with the reference's outputs
    results = {}
    for runtime in [n for n in RUNNERS if RUNNERS.get(n).artifact in artifacts and n != "torch"]:
        precision = artifact_precision(artifacts[RUNNERS.get(runtime).artifact])
        tolerance = gate_tolerance(precision, options.tolerance, hasattr(metric, "targets"))
        if runtime == source.reference_runtime and precision == "fp32" and not source.pinned:
            # only the unchanged graph is the reference: an ONNX source's int8 or pinned (--fix) model.onnx
            # is validated
            results[runtime] = RuntimeValidation.skipped(runtime, "this runtime is the reference")
            continue
        with reporter.stage(f"validate {runtime} ({precision})"):
            if precision == "fp32" and plain is not None:
                results[runtime] = validate_bundle_runtime(bundle, runtime, *plain[:2], tolerance, precision,
                                                           rerouted=plain[2])
                continue
            results[runtime] = validate_bundle_runtime(bundle, runtime, samples, references, tolerance, precision,
                                                       metric=metric, baseline=baseline, reference=reference,
                                                       max_drop=_max_drop(metric, options), rerouted=rerouted)
    return results


def gate_tolerance(precision: str, given: Tolerance | None, task_metric: bool) -> Tolerance:
    """The tolerance a runtime is held to (DESIGN.md §7): the user's (--atol/--rtol/--rel-l2) as given; else
    the precision's default, where int8 or bf16 with a task metric gates on the metric and the exit paths, the
    element-wise errors only reported (an int8 StoRM within its SI-SDR budget failed a 5% rel-L2 gate)."""
    from dataclasses import replace

    if given is not None:
        return given
    tolerance = DEFAULT_TOLERANCES[precision]
    return replace(tolerance, elementwise=False) if precision in ("int8", "bf16") and task_metric else tolerance


def _max_drop(metric, options) -> float | None:
    from edgekit.validation.metrics import DEFAULT_MAX_DROP

    if metric is None:
        return None
    return options.max_drop if options.max_drop is not None else DEFAULT_MAX_DROP.get(metric.name)


def validate_bundle_runtime(bundle, runtime, samples, references, tolerance, precision, metric=None,
                            baseline=None, reference=None, max_drop=None, rerouted=()) -> RuntimeValidation:
    """Open `runtime` on the bundle and validate it; a runtime that can't run here is `skipped`.

    With a `metric` (int8), the runtime's task metric is measured too and a drop above `max_drop` fails.
    `rerouted` ([(sample, reference exit)], `--keep-exits` bundles): samples whose route alone is checked.
    """
    from edgekit.runtimes import open_runner

    m = bundle.manifest
    try:
        runner = open_runner(bundle, runtime)
    except BackendUnavailable as exc:
        return RuntimeValidation.skipped(runtime, exc.reason)
    from edgekit.validation.metrics import memo_run

    with runner:
        run = memo_run(runner.run) if metric is not None else runner.run
        result = validate_runtime(runtime, run, samples, references, m.inputs, m.outputs, tolerance, precision)
        if kept_exits_record(m) is not None:
            result.rerouted = len(rerouted)
            result.failures += rerouted_failures(run, list(rerouted), kept_exits_record(m))
            result.status = "failed" if result.failures else result.status
        if metric is not None:
            measured = metric.evaluate(run, reference, baseline)
            result.metric = {**measured.to_json(), "max_drop": max_drop}
            if max_drop is not None and not measured.within(max_drop):
                result.failures.append(f"{measured.name} drops {measured.drop:.3g} from the fp32 reference "
                                       f"({measured.baseline:.4g} → {measured.value:.4g}; budget {max_drop:g})")
                result.status = "failed"
        return result


def _reference_runner(source, bundle, outputs):
    if source.kind == "onnx":
        from edgekit.runtimes.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(source.onnx_path, source.inputs + [s for s, _ in source.pinned], outputs,
                                 fixed={s.name: v for s, v in source.pinned})
    from edgekit.runtimes.torch import TorchRunner

    module = source.module if source.module is not None else source.exported.module()
    return TorchRunner(module, source.inputs, outputs)


def artifact_precision(entry) -> str:
    entries = entry if isinstance(entry, list) else [entry]
    return entries[0].get("precision", "fp32") if entries else "fp32"


def failure_message(failed: list[RuntimeValidation]) -> str:
    parts = [f"{v.runtime}: {v.failures[0]}" + (f" (+{len(v.failures) - 1} more)" if len(v.failures) > 1 else "")
             for v in failed]
    hint = ""
    if any(v.precision == "int8" for v in failed):
        hint = " (int8: --max-drop D keeps the most sensitive layers in float until the budget holds)"
    return "validation failed — " + "; ".join(parts) + hint


def revalidate_bundle(bundle: Bundle, runtimes: list[str], samples: int, tolerance: Tolerance | None,
                      extra_feeds: list[dict], overrides: dict, reporter: Reporter = SILENT,
                      seed: int = 1) -> dict[str, RuntimeValidation]:
    """`edgekit validate`: rerun the reference on stored + fresh samples and compare each runtime."""
    from edgekit.specs import apply_feeds
    from edgekit.validation.testdata import read_testdata

    m = bundle.manifest
    if bundle.verify and (bundle.path / "testdata").exists() and "testdata" in m.artifacts:
        bundle.verify_artifacts(["testdata"])  # the index itself; read_testdata checks each file against it
    stored = [inputs for inputs, _ in read_testdata(bundle.path, bundle.verify)]
    if not stored:
        raise EdgekitError(f"{bundle.path}: the bundle has no testdata/ to take example inputs from")
    feeds = make_samples(m.inputs, stored[0], stored[1:] + list(extra_feeds), samples, seed=seed)
    feeds = [apply_feeds(f, overrides, m.inputs) for f in feeds]
    reference_name = m.reference.get("runtime", "torch")
    with reporter.stage(f"reference: {reference_name} on {len(feeds)} samples"):
        with _open_reference(bundle, reference_name) as reference:
            references = [reference.run(f) for f in feeds]
    feeds, references, rerouted = split_rerouted(feeds, references, kept_exits_record(m))
    results = {}
    for runtime in runtimes:
        if runtime == reference_name and "onnx_fp32" not in m.artifacts:
            continue
        entry = bundle.artifact(_artifact_key(runtime))
        precision = artifact_precision(entry)
        # the gate the export used: a task metric measured then (its record kept) still gates, not rel-L2
        gated = (m.validation.get(runtime) or {}).get("gate") == "metric"
        with reporter.stage(f"validate {runtime} ({precision})"):
            results[runtime] = validate_bundle_runtime(
                bundle, runtime, feeds, references, gate_tolerance(precision, tolerance, gated), precision,
                rerouted=rerouted)
    return results


def _open_reference(bundle: Bundle, name: str):
    """The reference runner: an ONNX source's int8 bundle keeps its fp32 graph as `onnx_fp32`, which (not
    the int8 model.onnx that replaced it) is the reference."""
    from edgekit.runtimes import open_runner

    if name == "onnxruntime" and "onnx_fp32" in bundle.manifest.artifacts:
        from edgekit.runtimes.onnxruntime import OnnxRuntimeRunner

        m = bundle.manifest
        return OnnxRuntimeRunner(bundle.artifact_path("onnx_fp32"), m.inputs, m.outputs)
    return open_runner(bundle, name)


def merge_validation(old: dict, new: dict) -> dict:
    """The manifest's validation block after `edgekit validate`: a `skipped` (this host cannot run it) never
    replaces a result measured elsewhere, and an int8 `metric` record survives a re-check that did not
    measure it. Evidence is only ever replaced by other evidence."""
    merged = dict(old)
    for runtime, record in new.items():
        before = old.get(runtime) if isinstance(old.get(runtime), dict) else {}
        if record.get("status") == "skipped" and before.get("status") in ("passed", "failed"):
            continue
        if "metric" not in record and "metric" in before:
            record = {**record, "metric": before["metric"]}
        merged[runtime] = record
    return merged


def _artifact_key(runtime: str) -> str:
    from edgekit.runtimes import RUNNERS

    return RUNNERS.get(runtime).artifact

