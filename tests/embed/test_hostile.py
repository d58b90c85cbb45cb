"""Bundles that cannot lie or escape, in the C and C++ readers (DESIGN.md §8): paths that leave the bundle,
tampered model files, hostile shapes in testdata/index.json are each refused with one error line and exit
2; the SHA-256 matches known vectors; and the C bundle reader survives a fuzz run under ASan/UBSan, plus
the crashers that run found in the readers before these checks (tests/embed/corpus/)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

from native_build import LANGS, build_c_program, executables, run_example  # noqa: F401  (a fixture)

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "examples" / "c" / "src"
SANITIZER_REPORT = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|invariant broken")
FUZZ_CASES = 10_000


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _outside_copy(bundle: Path, name: str) -> Path:
    """The same bytes beside the bundle: only containment can tell the copy from the original."""
    outside = bundle.parent / "outside"
    outside.mkdir(exist_ok=True)
    return Path(shutil.copy(bundle / name, outside / Path(name).name))


def _set_file(name: str, file) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        target = file(bundle) if callable(file) else file
        _edit_json(bundle / "testdata" / "index.json",
                   lambda ix: ix["samples"][0]["inputs"][name].__setitem__("file", target))
    return edit


def _set_artifact_path(target) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        _outside_copy(bundle, "model.bin")
        path = str(_outside_copy(bundle, "model.xml")) if target is None else target
        _edit_json(bundle / "manifest.json", lambda m: m["artifacts"]["openvino"].__setitem__("path", path))
    return edit


def _symlink_out(name: str) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        outside = _outside_copy(bundle, name)
        (bundle / name).unlink()
        (bundle / name).symlink_to(outside)
    return edit


def _dotdot_to_outside_copy(bundle: Path) -> str:
    return os.path.relpath(_outside_copy(bundle, "testdata/000.input.image.bin"), bundle / "testdata")


OUTSIDE = r"resolves to .*/outside/{}, outside the bundle"
HOSTILE_PATHS = {  # case -> (edit of a bundle copy, the error expected)
    "testdata-dotdot": (_set_file("image", _dotdot_to_outside_copy),
                        r"samples\[0\]\.inputs 'image' file '\.\./\.\./outside/000\.input\.image\.bin': '\.\.' refused"),
    "testdata-passwd": (_set_file("image", "../" * 40 + "etc/passwd"),
                        r"inputs 'image' file '(\.\./)+etc/passwd': '\.\.' refused"),
    "testdata-absolute": (_set_file("image", "/etc/hostname"),
                          r"inputs 'image' file '/etc/hostname': absolute path refused"),
    "artifact-absolute": (_set_artifact_path(None),
                          r"artifacts\.openvino\.path '/.*/outside/model\.xml': absolute path refused"),
    "artifact-hostname": (_set_artifact_path("/etc/hostname"),
                          r"artifacts\.openvino\.path '/etc/hostname': absolute path refused"),
    "testdata-symlink": (_symlink_out("testdata/000.input.image.bin"),
                         r"inputs 'image' file '000\.input\.image\.bin': " + OUTSIDE.format(r"000\.input\.image\.bin")),
    "weights-symlink": (_symlink_out("model.bin"),
                        r"artifacts\.openvino\.weights 'model\.bin': " + OUTSIDE.format(r"model\.bin")),
}


@pytest.mark.cpp
@pytest.mark.openvino
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("case", HOSTILE_PATHS)
def test_paths_leaving_the_bundle_are_refused(lang, case, executables, toy_bundle_copy):
    edit, expected = HOSTILE_PATHS[case]
    edit(toy_bundle_copy)
    for flags in ((), ("--no-verify",)):  # containment does not depend on verification
        rc, report, stderr = run_example(executables[lang], toy_bundle_copy, *flags)
        assert rc == 2 and report["status"] == "error", (report, stderr)
        assert re.search(expected, report["error"]), report["error"]
        assert stderr.count("error:") == 1


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _append_to_weights(bundle: Path) -> tuple[tuple, str]:
    """Bytes after the weights change no result (OpenVINO reads by offset): only the digest can tell."""
    want = json.loads((bundle / "manifest.json").read_text())["artifacts"]["openvino"]["weights_sha256"]
    with open(bundle / "model.bin", "ab") as f:
        f.write(b"tampered")
    return (), rf"model\.bin: sha256 mismatch: manifest\.json says {want}, the file has {_sha256(bundle / 'model.bin')}"


def _lie_about_onnx(bundle: Path) -> tuple[tuple, str]:
    _edit_json(bundle / "manifest.json", lambda m: m["artifacts"]["onnx"].__setitem__("sha256", "0" * 64))
    got = _sha256(bundle / "model.onnx")
    return ("--model", "model.onnx"), rf"model\.onnx: sha256 mismatch: manifest\.json says {'0' * 64}, the file has {got}"


def _lie_about_size(bundle: Path) -> tuple[tuple, str]:
    size = (bundle / "model.xml").stat().st_size + (bundle / "model.bin").stat().st_size
    _edit_json(bundle / "manifest.json", lambda m: m["artifacts"]["openvino"].__setitem__("size_bytes", size + 1))
    return (), rf"artifacts\.openvino\.size_bytes is {size + 1}, the files hold {size} bytes"


def _unlisted_model(bundle: Path) -> tuple[tuple, str]:
    shutil.copy(bundle / "model.xml", bundle / "alt.xml")
    shutil.copy(bundle / "model.bin", bundle / "alt.bin")
    return ("--model", "alt.xml"), r"alt\.xml: not an artifact listed in manifest\.json, so it cannot be verified"


TAMPERED = {"weights-appended": _append_to_weights, "onnx-digest": _lie_about_onnx, "size": _lie_about_size,
            "unlisted": _unlisted_model}


@pytest.mark.cpp
@pytest.mark.openvino
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("case", TAMPERED)
def test_model_files_not_matching_the_manifest_are_refused_unless_no_verify(lang, case, executables, toy_bundle_copy):
    rc, report, _ = run_example(executables[lang], toy_bundle_copy)
    assert rc == 0 and report["verified"] is True
    flags, expected = TAMPERED[case](toy_bundle_copy)
    rc, report, stderr = run_example(executables[lang], toy_bundle_copy, *flags)
    assert rc == 2 and report["status"] == "error", (report, stderr)
    assert re.search(expected, report["error"]), report["error"]
    rc, report, stderr = run_example(executables[lang], toy_bundle_copy, *flags, "--no-verify")
    assert rc == 0 and report["status"] == "passed", (report, stderr)
    assert report["verified"] is False


HOSTILE_SHAPES = {  # num_steps: an int64 scalar in an 8-byte file
    "negative": ([-1, -1], r"shape\[0\] = -1 is negative"),  # -1 * -1 = 1 element: 8 bytes, had it passed
    # C reads numbers as doubles (2^61 + 1 is not one: refused above 2^53), C++ exactly (then the bytes overflow)
    "2^61+1": ([2**61 + 1], r"shape(\[0\] = \S+ is out of range| \[2305843009213693953\] of int64 overflows the byte count)"),
    "wraps-to-8-bytes": ([27, 19, 43, 5419, 77158673929],  # 2^63 + 1 elements: 8 bytes once multiplied by 8
                         r"shape \[27,19,43,5419,77158673929\] of int64 overflows the byte count"),
    "string-dim": (["1"], r"shape\[0\] is not a number"),
    "rank-9": ([1] * 9, r"shape has rank > 8"),
    "fraction": ([1.5], r"shape\[0\] = 1\.5 is out of range"),
}


@pytest.mark.cpp
@pytest.mark.openvino
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("case", HOSTILE_SHAPES)
def test_hostile_testdata_shapes_are_refused(lang, case, executables, toy_bundle_copy):
    shape, expected = HOSTILE_SHAPES[case]
    _edit_json(toy_bundle_copy / "testdata" / "index.json",
               lambda ix: ix["samples"][0]["inputs"]["num_steps"].__setitem__("shape", shape))
    assert (toy_bundle_copy / "testdata" / "000.input.num_steps.bin").stat().st_size == 8
    rc, report, stderr = run_example(executables[lang], toy_bundle_copy)
    assert rc == 2 and report["status"] == "error", (report, stderr)
    assert re.search(r"testdata/index\.json: samples\[0\]\.inputs 'num_steps': " + expected, report["error"]), report["error"]


# --- SHA-256 and the fuzz run: gcc only, no OpenVINO ------------------------------------------------


KNOWN_SHA256 = {  # FIPS 180-2 / NIST CSRC examples
    b"": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    b"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq":
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu":
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    b"a" * 1_000_000: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
}


@pytest.mark.parametrize("cxx", [False, True], ids=["c", "c++"])
def test_sha256_matches_known_vectors_and_hashlib(cxx, tmp_path):
    exe = build_c_program([HERE / "sha256_sum.c"], tmp_path / "sha256_sum", cxx=cxx, sanitize=not cxx)
    files = {}
    for i, (data, digest) in enumerate(KNOWN_SHA256.items()):
        files[tmp_path / f"vector{i}"] = digest
        (tmp_path / f"vector{i}").write_bytes(data)
    rng = random.Random(0)
    for n in (1, 55, 56, 63, 64, 65, 119, 120, 32767, 32768, 32769, 100_000):  # padding and buffer edges
        data = rng.randbytes(n)
        files[tmp_path / f"random{n}"] = hashlib.sha256(data).hexdigest()
        (tmp_path / f"random{n}").write_bytes(data)
    proc = subprocess.run([str(exe), *map(str, files)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = {path: digest for digest, path in (line.split("  ", 1) for line in proc.stdout.splitlines())}
    assert got == {str(path): digest for path, digest in files.items()}


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory) -> Path:
    """tests/embed/fuzz_bundle.c linked with the C reader, under ASan + UBSan."""
    out = tmp_path_factory.mktemp("fuzz") / "fuzz_bundle"
    return build_c_program([SRC / "bundle.c", SRC / "integrity.c", SRC / "check.c", HERE / "fuzz_bundle.c"], out)


def _run_fuzzer(fuzzer: Path, crashes: Path, *args: str) -> tuple[dict, float]:
    crashes.mkdir(exist_ok=True)
    # Scratch bundles in memory when possible: on a disk-backed /tmp the file churn is 3x slower.
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="ek-fuzz-", dir=shm if os.access(shm, os.W_OK) else crashes.parent))
    start = time.perf_counter()
    try:
        proc = subprocess.run([str(fuzzer), "--crashes", str(crashes), "--work", str(work), *args], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0 and not SANITIZER_REPORT.search(proc.stderr), proc.stderr[-5000:]
    assert not list(crashes.iterdir()), "crashing cases saved"
    counts = dict(re.findall(r"(\w+): ([\d.]+)", proc.stdout))
    return {k: float(v) for k, v in counts.items()}, seconds


def test_fuzzed_bundles_never_crash_the_c_reader(fuzzer, tmp_path):
    counts, seconds = _run_fuzzer(fuzzer, tmp_path / "crashes", "--cases", str(FUZZ_CASES), "--seed", "22")
    print(f"\nfuzz: {counts} in {seconds:.1f} s")
    assert counts["cases"] == FUZZ_CASES and seconds < 60
    assert counts["loaded"] > 100 and counts["refused"] > 100  # both sides of every check were exercised


def test_saved_crashers_are_refused(fuzzer, tmp_path):
    """Cases the fuzzer found in the reader before the checks: UB casts of 1e308, allocations of 2^64 bytes,
    a '..' read outside the bundle. Each must now be refused, without a sanitizer report."""
    corpus = sorted((HERE / "corpus").glob("*.case"))
    assert len(corpus) >= 6
    counts, _ = _run_fuzzer(fuzzer, tmp_path / "crashes", "--replay", *map(str, corpus))
    assert counts["cases"] == len(corpus) and counts["refused"] == len(corpus)
