"""Native benchmark rows: the C++/C runners' `--bench` (examples/cpp, examples/c) run as a child process
and turned into `BenchResult` rows with `api` "c++"/"c", next to the Python rows of `edgekit bench
--native`. The runner checks the bundle's testdata before timing and refuses a model that fails it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edgekit.bench.stats import BenchResult, BenchSettings
from edgekit.errors import BackendUnavailable, EdgekitError

LANGS = ("cpp", "c")
API = {"cpp": "c++", "c": "c"}


def native_langs(values: list[str]) -> list[str]:
    """`--native cpp,c` → ["cpp", "c"]; raises EdgekitError for anything else."""
    from edgekit.native.embed import ALIASES

    langs = [ALIASES.get(v.lower(), v.lower()) for v in values]
    unknown = [v for v, lang in zip(values, langs) if lang not in LANGS]
    if unknown:
        raise EdgekitError(f"--native {','.join(unknown)}: choose from {', '.join(LANGS)}")
    return list(dict.fromkeys(langs))


def bench_argv(executable, bundle_path, settings: BenchSettings, overrides: dict, device: str = "CPU",
               verify: bool = True, sample: int | None = None) -> list[str]:
    """The runner's command line for `settings` (budget, warm-up, threads) and the `--feed` overrides."""
    argv = [str(executable), str(bundle_path), "--bench", "--device", device, "--warmup", str(settings.warmup)]
    if settings.iters is not None and settings.seconds is None:
        argv += ["--iters", str(settings.iters)]
    elif settings.seconds is not None and settings.iters is None:
        argv += ["--seconds", repr(float(settings.seconds))]
    # both set: the default budget (200 calls or 20 s), which the runners apply without flags
    if settings.threads:
        argv += ["--threads", str(settings.threads)]
    if sample:
        argv += ["--sample", str(sample)]
    for name, value in overrides.items():
        argv += ["--feed", f"{name}={value}"]
    if not verify:
        argv.append("--no-verify")
    return argv


def run_bench_argv(argv: list[str], lang: str, timeout_s: float) -> tuple[BenchResult, dict | None]:
    """Run a runner's `--bench` and return its row (a `failed` row with the reason when the testdata check
    fails, the runner reports an error or dies) and the whole JSON document it printed (None on failure)."""
    api = API[lang]

    def failed(reason: str) -> tuple[BenchResult, None]:
        return BenchResult("openvino", "failed", reason=reason, api=api, runner=Path(argv[0]).name), None

    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return failed(f"timed out after {timeout_s:g} s (--timeout S)")
    lines = proc.stdout.strip().splitlines()
    try:
        doc = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        err = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return failed(f"the {api} runner printed no JSON ({err})")
    if proc.returncode == 1 or doc.get("status") == "failed":
        first = (doc.get("failures") or ["outputs differ from the reference"])[0]
        return failed(f"testdata check failed, not timed: {first}")
    if proc.returncode != 0 or not doc.get("results"):
        return failed(str(doc.get("error") or f"the {api} runner exited with code {proc.returncode}"))
    return result_from_row(doc["results"][0]), doc


def result_from_row(row: dict) -> BenchResult:
    """A BenchResult from one `--bench` row; keys this edgekit does not know are dropped, not an error."""
    from dataclasses import fields

    known = {f.name for f in fields(BenchResult)} - {"samples_ms"}
    return BenchResult(**{k: v for k, v in row.items() if k in known})


def native_results(bundle_path, langs: list[str], settings: BenchSettings, overrides: dict, device: str = "CPU",
                   verify: bool = True, on_phase=lambda text: None) -> list[BenchResult]:
    """Build (cached) and run each runner's `--bench` on the bundle: one row per language. A runner that
    cannot be built here is an `unavailable` row with the reason; one that fails is a `failed` row."""
    from edgekit.native.build import build_runner

    rows = []
    for lang in langs:
        api = API[lang]
        if settings.batch != 1:
            rows.append(BenchResult("openvino", "unavailable", reason=f"the {api} runner times batch 1 only "
                                    f"(--batch {settings.batch})", api=api))
            continue
        on_phase(f"building the {api} runner")
        try:
            plan = build_runner(bundle_path, lang)
        except BackendUnavailable as exc:
            rows.append(BenchResult("openvino", "unavailable", reason=exc.reason, api=api))
            continue
        except EdgekitError as exc:
            rows.append(BenchResult("openvino", "failed", reason=str(exc), api=api))
            continue
        on_phase(f"timing the {api} runner")
        argv = bench_argv(plan.executable, Path(bundle_path).absolute(), settings, overrides, device, verify)
        rows.append(run_bench_argv(argv, lang, settings.row_timeout_s())[0])
    return rows


def native_sweep_row(bundle, settings: dict, feeds: dict, feed: dict, verify: bool = True) -> dict:
    """A sweep cell's benchmark row from the native runner (`[bench] native`): the packed runner at
    `native_runner`, else one built here. The runner times the bundle's testdata sample, so `feed` (the
    cell's input, after its shape) must have the sample's shapes. Raises EdgekitError when it does not,
    and for a failed row (BackendUnavailable when the runner cannot be built on this host)."""
    from edgekit.native.build import build_runner
    from edgekit.validation.testdata import read_testdata

    lang = settings["native"]
    stored = read_testdata(bundle.path)
    sample = stored[0][0] if stored else {}
    for name, value in feed.items():
        want = tuple(getattr(value, "shape", ()))
        if name in sample and tuple(sample[name].shape) != want:
            raise EdgekitError(f"native bench: the {API[lang]} runner times the bundle's testdata sample, whose "
                               f"{name!r} is {list(sample[name].shape)}, not the cell's {list(want)} (drop the "
                               "shape axis or bench.native)")
    runner = settings.get("native_runner")
    if runner and not Path(runner).is_file():
        raise EdgekitError(f"bench.native_runner {runner}: no such file on this host")
    executable = Path(runner) if runner else build_runner(bundle.path, lang).executable
    timing = BenchSettings(settings["warmup"], settings["iters"], None, settings.get("threads"), 1)
    argv = bench_argv(executable, bundle.path, timing, feeds, "CPU", verify)
    row, _ = run_bench_argv(argv, lang, timing.row_timeout_s())
    if not row:
        raise EdgekitError(f"openvino ({API[lang]}) benchmark {row.status}: {row.reason}")
    return row.to_json()
