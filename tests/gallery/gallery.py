"""The architecture gallery's driver (issue #25): every model of models.py through the real CLI, step by step
(prune --density 0.5 → export onnx / openvino / tensorrt → int8 within the cosine budget → validate), each
step recorded as ok or failed with the CLI's one-line reason. Used by tests/gallery/test_gallery.py and, as a
script, to regenerate the README's support table:

    .venv/bin/python tests/gallery/gallery.py            # run, print the table
    .venv/bin/python tests/gallery/gallery.py --readme   # run, write the table into README.md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODELS = HERE / "models.py"
README = ROOT / "README.md"
BEGIN, END = "<!-- gallery:support -->", "<!-- /gallery:support -->"
STEPS = ("prune", "onnx", "openvino", "tensorrt", "int8", "validate")
TARGETS = ("onnx", "openvino", "tensorrt")
# tiny on purpose: the gallery runs in `make test` (2 shared cores); the figures only bound the run time
DENSITY = 0.5
PRUNE = ("--density", str(DENSITY), "--steps", "2", "--recover-minutes", "0")
DENSITY_SLACK = 0.05  # a prune that keeps more than DENSITY + this of the parameters missed its target
SAMPLES, CALIB_SAMPLES, TIMEOUT = "2", 8, 600


@dataclass
class Step:
    status: str  # "ok" | "failed"
    reason: str = ""  # the CLI's one-line error (paths made relative), or why the step could not run


@dataclass
class ModelRun:
    name: str
    description: str
    steps: dict[str, Step] = field(default_factory=dict)
    params: tuple[int, int] | None = None  # before → after pruning
    seconds: float = 0.0

    def failed(self) -> dict[str, str]:
        return {k: s.reason for k, s in self.steps.items() if s.status != "ok"}


def gallery_models():
    """models.py loaded from its path (it is also a user file for `edgekit export tests/gallery/models.py:NAME`)."""
    spec = importlib.util.spec_from_file_location("edgekit_gallery_models", MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def edgekit(*args, work: Path) -> tuple[int, str, str]:
    """`edgekit ARGS` in its own process with one intra-op thread (the machine is shared; see
    tests/pruning/prune_fixtures.py); returns (exit code, stdout, the one-line reason when it failed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return 124, "", f"edgekit {args[0]} ran past {TIMEOUT} s"
    return done.returncode, done.stdout, "" if done.returncode == 0 else one_line_reason(done.stderr, work)


def one_line_reason(stderr: str, work: Path) -> str:
    """The `error:` line the CLI prints for a failure a user can fix, else the last line of a traceback
    (a bug: prefixed `crash:`); temporary paths replaced by <work>, so the reason is the same on every run."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line[len("error:"):].strip() for line in lines if line.startswith("error:")]
    raised = [line for line in lines if re.match(r"[\w.]+(Error|Exception|Interrupt)\b", line)]
    reason = errors[0] if errors else "crash: " + (raised or lines or ["no output"])[-1]
    reason = reason.replace(str(work), "<work>").replace(str(ROOT) + os.sep, "")
    reason = re.sub(r"\s*\(full log: [^)]*\)", "", reason)  # a timestamped log file
    return re.sub(r"\s+", " ", reason)


def _write_calibration(model, path: Path) -> None:
    import numpy as np

    (example,) = model.example_inputs()
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.standard_normal((CALIB_SAMPLES, *example.shape)).astype(np.float32))


@functools.cache
def trt_arch() -> str:
    """The GPU's arch where there is one (its engines are then validated), else sm86 (built, not run)."""
    from edgekit.export.trt_compat import cuda_device_available

    return "current" if cuda_device_available() else "sm86"


def _export(spec: str, adapter: Path | None, targets, out: Path, work: Path) -> tuple[int, dict, str]:
    args = ["export", spec, *[a for t in targets for a in ("--target", t)], "--samples", SAMPLES, "--out", out,
            "--json", "--force"]
    args += ["--trt-arch", trt_arch()] if "tensorrt" in targets else []
    args += ["--adapter", adapter] if adapter else []
    code, stdout, reason = edgekit(*args, work=work)
    return code, json.loads(stdout) if code == 0 else {}, reason


def _target_status(target: str, manifest: dict) -> Step:
    """A target passed when its artifact validated (TensorRT: its engine built for the model's dynamic
    profile, and validated where there is a GPU; a fallback to the fixed example shape is a failure with
    TensorRT's reason)."""
    if target == "tensorrt":
        engines = manifest.get("artifacts", {}).get("tensorrt") or []
        if not engines:
            return Step("failed", "export wrote no TensorRT engine")
        notes = [e["profile_note"] for e in engines if e.get("profile_note")]
        if notes:
            return Step("failed", f"tensorrt: {notes[0]}")
        block = manifest.get("validation", {}).get("tensorrt", {})  # skipped without a GPU
        return Step("failed", f"tensorrt: {block}") if block.get("status") == "failed" else Step("ok")
    runtime = "onnxruntime" if target == "onnx" else target
    block = manifest.get("validation", {}).get(runtime, {})
    return Step("ok") if block.get("status") == "passed" else Step("failed", f"{runtime}: {block}")


def run_model(name: str, work: Path) -> ModelRun:
    """Every step on gallery model `name`, in `work`; never raises for a failed step."""
    models = gallery_models()
    factory, description = models.GALLERY[name]
    run, start, spec = ModelRun(name, description), time.perf_counter(), f"{MODELS.relative_to(ROOT)}:{name}"
    work.mkdir(parents=True, exist_ok=True)

    code, stdout, reason = edgekit("prune", spec, *PRUNE, "--out", work / "pruned", "--json", "--force", work=work)
    run.steps["prune"] = Step("ok") if code == 0 else Step("failed", reason)
    adapter = work / "pruned" / "adapter.safetensors" if code == 0 else None  # else: the unpruned model goes on
    if code == 0:
        report = json.loads(stdout)
        run.params = (report["params_before"], report["params_after"])
        kept = run.params[1] / run.params[0]
        if kept > DENSITY + DENSITY_SLACK:  # exit 0, but the model did not shrink as asked
            run.steps["prune"] = Step("failed", f"--density {DENSITY} kept {kept:.2f} of the parameters "
                                                f"({run.params[0]:,} → {run.params[1]:,})")

    fp32 = work / "fp32"
    code, manifest, reason = _export(spec, adapter, TARGETS, fp32, work)
    if code == 0:
        run.steps.update({t: _target_status(t, manifest) for t in TARGETS})
    else:  # which target failed: each alone (the export cache keeps the ONNX between them)
        for target in TARGETS:
            if target != "onnx" and run.steps["onnx"].status != "ok":
                run.steps[target] = Step("failed", "not run: the ONNX export failed (see onnx)")
                continue
            out = work / f"fp32-{target}"
            code, manifest, reason = _export(spec, adapter, (target,), out, work)
            run.steps[target] = _target_status(target, manifest) if code == 0 else Step("failed", reason)
        fp32 = work / "fp32-onnx"
    built = [t for t in ("openvino", "tensorrt") if run.steps[t].status == "ok"]

    if run.steps["onnx"].status != "ok":
        run.steps["int8"] = run.steps["validate"] = Step("failed", "not run: no fp32 bundle (onnx failed)")
    else:
        calib = work / "calib.npz"
        _write_calibration(factory(), calib)
        int8 = work / "int8"
        args = ["quantize", fp32, "--calib", calib, "--calib-samples", CALIB_SAMPLES, "--metric", "cosine",
                "--samples", SAMPLES, "--trt-arch", trt_arch(), "--out", int8, "--json", "--force"]
        code, _, reason = edgekit(*args, *[a for t in built for a in ("--target", t)], work=work)
        run.steps["int8"] = Step("ok") if code == 0 else Step("failed", reason)
        reasons = []
        for bundle in [fp32] + ([int8] if code == 0 else []):
            code, _, reason = edgekit("validate", bundle, "--samples", SAMPLES, "--json", work=work)
            reasons += [f"{bundle.name}: {reason}"] if code else []
        run.steps["validate"] = Step("failed", "; ".join(reasons)) if reasons else Step("ok")
    run.seconds = time.perf_counter() - start
    return run


def run_gallery(work: Path, names=None, jobs: int = 2) -> list[ModelRun]:
    """Every model (in order), `jobs` at a time: each step is a one-thread edgekit process, so two models
    side by side use both cores of the CI machine (the sequential gallery took 223 s of a 31-minute suite)."""
    names = list(names or gallery_models().GALLERY)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda name: run_model(name, work / name), names))


def support_table(runs: list[ModelRun], known: dict) -> str:
    """The Markdown support table of a gallery run, with one numbered note per failed step: its exact
    reason and, where the failure is known (gallery_expected.EXPECTED_FAILURES), the issue-ready note."""
    lines = ["| model | what it exercises | params after prune | " + " | ".join(STEPS) + " |",
             "|---|---|---:|" + "---|" * len(STEPS)]
    notes: dict[tuple[str, str], list] = {}  # (model, reason) → [number, steps, issue note]
    for run in runs:
        params = f"{run.params[0]:,} → {run.params[1]:,}" if run.params else "(unpruned)"
        cells = []
        for step in STEPS:
            if run.steps[step].status == "ok":
                cells.append("✓")
                continue
            entry = known.get((run.name, step))
            note = notes.setdefault((run.name, run.steps[step].reason), [len(notes) + 1, [], None])
            note[1].append(step)
            note[2] = note[2] or (entry.note if entry else None)
            cells.append(f"✗ [{note[0]}]")
        lines.append(f"| {run.name} | {run.description} | {params} | " + " | ".join(cells) + " |")
    lines.append("")
    for (name, reason), (number, steps, note) in notes.items():
        note = note or "Not triaged yet: add it to tests/gallery/gallery_expected.py."
        lines.append(f"{number}. **{name}** ({', '.join(steps)}): `{reason}`. {note}")
    return "\n".join(lines).rstrip() + "\n"


def readme_table(text: str) -> str | None:
    """The table between the gallery markers of README text (None without markers)."""
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    return match.group(1) if match else None


def write_readme_table(table: str, readme: Path = README) -> None:
    text = readme.read_text()
    if readme_table(text) is None:
        raise SystemExit(f"{readme}: no {BEGIN} … {END} markers")
    start, end = text.index(BEGIN) + len(BEGIN) + 1, text.index(END)
    readme.write_text(text[:start] + table + text[end:])


def main(argv=None) -> int:
    from gallery_expected import EXPECTED_FAILURES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--models", nargs="*", help="only these models (default: all)")
    parser.add_argument("--work", type=Path, help="keep the bundles here (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgekit-gallery-") as tmp:
        os.environ.setdefault("EDGEKIT_CACHE", str(Path(tmp) / "cache"))  # a fresh export cache, as in the test
        start = time.perf_counter()
        runs = run_gallery(args.work or Path(tmp), args.models)
        table = support_table(runs, EXPECTED_FAILURES)
    print(table)
    for run in runs:
        print(f"{run.name}: {run.seconds:.1f} s", file=sys.stderr)
    print(f"total: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.readme:
        if args.models:
            raise SystemExit("--readme needs the whole gallery (no --models)")
        write_readme_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
