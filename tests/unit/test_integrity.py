"""Integrity and containment (DESIGN.md §8, issue #22): artifacts are checked against the manifest's sha256
and size before use, paths from a manifest never leave the bundle, stale staging dirs are reaped and two
runs racing for one --out end with one bundle and one clean error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from conftest import ROOT, manifest_of, run_cli
from edgekit.bundle import Bundle, reap_stale, staged_bundle
from edgekit.errors import EdgekitError
from edgekit.integrity import IntegrityError, check_entry, contained_path, sha256_cached


def _bundle(tmp_path, files: dict, entries: dict) -> Bundle:
    from edgekit.bundle import Manifest, finalize_artifacts

    root = tmp_path / "b"
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    manifest = Manifest(source={"spec": "x"}, inputs=[], outputs=[], artifacts=finalize_artifacts(root, entries))
    (root / "manifest.json").write_text(json.dumps(manifest.to_json()))
    return Bundle.load(root)


@pytest.mark.parametrize("path, message", [
    ("../../../../etc/passwd", "leaves the bundle"),
    ("/etc/hostname", "is absolute"),
    ("a/../../x", "leaves the bundle"),
    ("~/x", "is absolute"),
    ("C:\\x", "is absolute"),
    ("", "is not a file name"),
    (None, "is not a file name"),
    ("a\x00b", "is not a file name"),
])
def test_paths_that_leave_the_bundle_are_refused(tmp_path, path, message):
    with pytest.raises(IntegrityError, match=message):
        contained_path(tmp_path, path, "onnx")


def test_a_symlink_out_of_the_bundle_is_refused_and_one_inside_is_fine(tmp_path):
    (tmp_path / "real.onnx").write_bytes(b"x")
    os.symlink(tmp_path / "real.onnx", tmp_path / "inside.onnx")
    os.symlink("/etc/hostname", tmp_path / "outside.onnx")
    assert contained_path(tmp_path, "inside.onnx", "onnx") == tmp_path / "inside.onnx"
    with pytest.raises(IntegrityError, match="symlink to /etc/hostname, outside the bundle"):
        contained_path(tmp_path, "outside.onnx", "onnx")


def test_tampered_artifact_is_one_error_naming_the_file_and_both_digests(tmp_path):
    bundle = _bundle(tmp_path, {"model.xml": b"<xml/>", "model.bin": b"weights!"},
                     {"openvino": {"path": "model.xml", "weights": "model.bin"}})
    entry = bundle.manifest.artifacts["openvino"]
    assert entry["size_bytes"] == 14 and entry["weights_sha256"]
    assert bundle.artifact_path("openvino") == bundle.path / "model.xml"
    (bundle.path / "model.bin").write_bytes(b"weights?")
    with pytest.raises(IntegrityError) as info:
        bundle.artifact_path("openvino")
    text = str(info.value)
    assert "model.bin: openvino weights does not match the manifest" in text
    assert entry["weights_sha256"] in text and sha256_cached(bundle.path / "model.bin") in text
    bundle.verify = False  # --no-verify: used as is, still contained
    assert bundle.artifact_path("openvino") == bundle.path / "model.xml"


def test_size_and_missing_digest_are_checked(tmp_path):
    bundle = _bundle(tmp_path, {"model.onnx": b"abc"}, {"onnx": {"path": "model.onnx"}})
    entry = dict(bundle.manifest.artifacts["onnx"])
    with pytest.raises(IntegrityError, match="3 bytes, manifest says 4"):
        check_entry(bundle.path, {**entry, "size_bytes": 4}, "onnx")
    with pytest.raises(IntegrityError, match="has no sha256 in the manifest"):
        check_entry(bundle.path, {"path": "model.onnx"}, "onnx")
    (bundle.path / "model.onnx").unlink()
    with pytest.raises(IntegrityError, match="onnx is missing from the bundle"):
        bundle.artifact_path("onnx")


def test_digest_cache_sees_a_rewritten_file(tmp_path):
    file = tmp_path / "f"
    file.write_bytes(b"one")
    first = sha256_cached(file)
    assert sha256_cached(file) == first
    file.write_bytes(b"two, longer")
    assert sha256_cached(file) != first


@pytest.mark.parametrize("text, message", [
    ("[]", "not an edgekit manifest"),
    ('{"schema": "edgekit.bundle/1"}', "missing"),
    ("{", "unreadable manifest"),
    ("[" * 100000, "unreadable manifest"),
])
def test_bad_manifests_are_one_edgekit_error(tmp_path, text, message):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(EdgekitError, match=message):
        Bundle.load(tmp_path)


def test_stale_staging_dirs_of_dead_runs_are_reaped(tmp_path):
    out = tmp_path / "toy"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [tmp_path / f".toy.partial-{dead.stdout.strip()}-abc", tmp_path / ".toy.old-xyz123",
             tmp_path / ".toy.partial-oldformat", tmp_path / f".toy.auto-{dead.stdout.strip()}-ghi"]
    live = tmp_path / f".toy.auto-{os.getpid()}-def"
    other = tmp_path / ".other.partial-1-x"
    for d in [*stale, live, other]:
        d.mkdir()
    assert sorted(reap_stale(out)) == sorted(stale)
    assert live.exists() and other.exists()


def test_two_runs_racing_for_one_out_end_with_one_bundle_and_one_error(tmp_path):
    out = tmp_path / "toy"
    ready, errors, done = threading.Barrier(2), [], []

    def export(tag: str):
        try:
            with staged_bundle(out) as staging:
                (staging / "manifest.json").write_text(tag)
                ready.wait()  # both have passed the destination check and built a bundle
            done.append(tag)
        except EdgekitError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=export, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 1 and len(errors) == 1
    assert (out / "manifest.json").read_text() == done[0]
    assert "already exists" in errors[0] or "another run wrote a bundle there" in errors[0]
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]  # no staging dir left by the loser


@pytest.mark.openvino
def test_verify_command(toy_bundle_copy):
    ok = run_cli("verify", toy_bundle_copy, "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["status"] == "passed" and len(report["checked"]) == 5 and not report["problems"]
    index = toy_bundle_copy / "testdata" / "index.json"
    index.write_text(index.read_text().replace('"little"', '"big"'))
    (toy_bundle_copy / "model.xml").write_text("<net/>")
    bad = run_cli("verify", toy_bundle_copy, "--json")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    problems = json.loads(bad.stdout)["problems"]
    assert len(problems) == 2 and "model.xml" in problems[0] and "index.json" in problems[1]


@pytest.mark.slow
@pytest.mark.onnxruntime
def test_quantize_checks_the_fp32_bundle_unless_no_verify_and_records_it(toy_bundle_copy, tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "sweep"))
    from sweep_helpers import CALIB  # toy's int8 calibration feeds

    (tmp_path / "calib.py").write_text(CALIB)
    manifest = json.loads((toy_bundle_copy / "manifest.json").read_text())
    recorded = manifest["artifacts"]["onnx"]["sha256"]
    manifest["artifacts"]["onnx"]["sha256"] = "0" * 64  # the manifest no longer vouches for model.onnx
    (toy_bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    args = ["quantize", toy_bundle_copy, "--target", "onnx", "--calib", f"{tmp_path / 'calib.py'}:feeds",
            "--calib-samples", "4", "--samples", "2", "--json"]
    refused = run_cli(*args, "--out", tmp_path / "refused")
    assert refused.returncode == 1 and not (tmp_path / "refused").exists()
    assert "Traceback" not in refused.stderr and "model.onnx" in refused.stderr and recorded in refused.stderr
    used = run_cli(*args, "--out", tmp_path / "used", "--no-verify")
    assert used.returncode == 0, used.stderr[-2000:]
    assert json.loads(used.stdout)["pipeline"]["quantize"]["source_verified"] is False
    assert manifest_of(tmp_path / "used")["pipeline"]["quantize"]["source_verified"] is False


@pytest.mark.onnxruntime
def test_two_cli_exports_racing_for_one_out_end_with_one_bundle_and_one_clean_error(toy_bundle, tmp_path):
    out = tmp_path / "raced"
    args = [sys.executable, "-m", "edgekit.cli", "export", str(toy_bundle / "model.onnx"), "--target", "onnx",
            "--no-cache", "--out", str(out)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close(), p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "Traceback" not in loser and loser.count("error:") == 1
    assert "already exists" in loser or "another run wrote a bundle there" in loser, loser
    assert Bundle.load(out).manifest.validation  # the winner's bundle, whole
    assert [p.name for p in tmp_path.iterdir()] == ["raced"]  # no staging dir left by the loser
