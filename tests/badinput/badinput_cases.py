"""The bad-input corpus (issue #22): one row per case, every command and every input kind.

A case is (id, setup, argv, exit code, needles). `setup(tmp, toy)` writes the bad input under `tmp` (`toy`
is a private copy of the session's toy bundle, free to damage) and returns a dict of names for `argv`'s
`{placeholders}`; `{out}` is always `tmp/out`, which must not exist afterwards. Exit code 1 is an
EdgekitError (exactly one `error:` line holding every needle); 2 is a usage error from the CLI parser.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np

CANARY = "PICKLE_RAN"  # written by every payload below if it ever runs; the test asserts it never exists


class Payload:
    """Unpickling this writes the canary: a pickle that must never be loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# --- setups ------------------------------------------------------------------------------------


def _py(body: str):
    def setup(tmp, toy):
        (tmp / "m.py").write_text(body)
        return {"m": tmp / "m.py"}
    return setup


def _file(name: str, data: bytes):
    def setup(tmp, toy):
        (tmp / name).write_bytes(data)
        return {"f": tmp / name}
    return setup


def _toy_onnx_prefix(tmp, toy):
    data = (toy / "model.onnx").read_bytes()
    (tmp / "t.onnx").write_bytes(data[: len(data) // 3])
    return {"f": tmp / "t.onnx"}


def _onnx_model(domain: str, opset: int):
    def setup(tmp, toy):
        import onnx
        from onnx import TensorProto, helper

        node = helper.make_node("Foo" if domain else "Relu", ["x"], ["y"], domain=domain)
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
        imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
        model = helper.make_model(graph, opset_imports=imports)
        onnx.save(model, str(tmp / "m.onnx"))
        return {"f": tmp / "m.onnx"}
    return setup


def _npz(**arrays):
    def setup(tmp, toy):
        from edgekit.validation.testdata import read_testdata

        feed = read_testdata(toy)[0][0]
        data = {k: (v(feed[k]) if callable(v) else v) for k, v in arrays.items()}
        data = {**{k: v for k, v in feed.items() if k not in arrays}, **{k: v for k, v in data.items() if v is not None}}
        np.savez(tmp / "d.npz", **data)
        return {"f": tmp / "d.npz"}
    return setup


def _pickled_npz(tmp, toy):
    evil = np.array([Payload(str(tmp / CANARY))], dtype=object)
    np.savez(tmp / "d.npz", image=evil)
    return {"f": tmp / "d.npz"}


def _manifest(change):
    def setup(tmp, toy):
        path = toy / "manifest.json"
        data = json.loads(path.read_text())
        new = change(data, tmp, toy)
        path.write_text(new if isinstance(new, str) else json.dumps(data))
        return {}
    return setup


def _damage(name: str, how: str):
    def setup(tmp, toy):
        path = toy / name
        data = bytearray(path.read_bytes())
        if how == "flip":
            data[len(data) // 2] ^= 0xFF
        elif how == "truncate":
            data = data[: len(data) // 2]
        elif how == "delete":
            path.unlink()
            return {}
        path.write_bytes(bytes(data))
        return {}
    return setup


def _testdata_file(tmp, toy, role="input"):
    return next(p for p in sorted((toy / "testdata").glob(f"000.{role}.*.bin")))


def _flip_testdata(tmp, toy):
    path = _testdata_file(tmp, toy, "output")
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    return {}


def _truncate_testdata(tmp, toy):
    path = _testdata_file(tmp, toy)
    path.write_bytes(path.read_bytes()[:-4])
    return {}


def _hostile_testdata_path(tmp, toy):
    index = toy / "testdata" / "index.json"
    data = json.loads(index.read_text())
    name = next(iter(data["samples"][0]["inputs"]))
    data["samples"][0]["inputs"][name]["file"] = "../../../../etc/hostname"
    index.write_text(json.dumps(data))
    return {}


def _symlink_out(tmp, toy):
    (toy / "model.onnx").unlink()
    os.symlink("/etc/hostname", toy / "model.onnx")
    return {}


def _evil_source(tmp, toy):
    (tmp / "evil.py").write_text(f"open({str(tmp / CANARY)!r}, 'w').close()\ndef build():\n    raise SystemExit(3)\n")
    data = json.loads((toy / "manifest.json").read_text())
    data["source"] = {"spec": f"{tmp / 'evil.py'}:build", "kind": "zoo", "sha256": data["source"].get("sha256")}
    (toy / "manifest.json").write_text(json.dumps(data))
    return {}


def _evil_pt2(tmp, toy):
    """model.pt2 replaced by a zip holding a pickle payload, the manifest updated to match: loading must
    refuse or ignore it, never unpickle it."""
    from edgekit.bundle import sha256_file

    with zipfile.ZipFile(toy / "model.pt2", "w") as z:
        z.writestr("model/data.pkl", pickle.dumps(Payload(str(tmp / CANARY))))
    data = json.loads((toy / "manifest.json").read_text())
    data["source"]["kind"] = "file"  # no zoo rebuild: the reference must come from model.pt2
    data["artifacts"]["torch"].update(sha256=sha256_file(toy / "model.pt2"), size_bytes=(toy / "model.pt2").stat().st_size)
    (toy / "manifest.json").write_text(json.dumps(data))
    return {}


def _dir(name: str, files: dict | None = None):
    def setup(tmp, toy):
        folder = tmp / name
        folder.mkdir()
        for file, data in (files or {}).items():
            (folder / file).write_bytes(data)
        return {"d": folder}
    return setup


def _toml(text: str):
    def setup(tmp, toy):
        (tmp / "s.toml").write_text(text)
        return {"f": tmp / "s.toml"}
    return setup


SWEEP = '''source = "zoo:toy?width=4,max_steps=4"
out = "{out}"
[axes]
{axes}
'''


def _none(tmp, toy):
    return {}


def _set(path: list, value):
    def change(data, tmp, toy):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


TOY = "zoo:toy?width=4,max_steps=4"
MODULE = "import torch\n\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n        {body}\n\n\ndef build():\n    return M()\n"

# (id, setup, argv, exit code, needles in the one error line)
CASES = [
    # model sources
    ("src-missing-file", _none, ["export", "{tmp}/nope.py:build", "--out", "{out}"], 1, ["nope.py", "does not exist"]),
    ("src-missing-function", _py("def make():\n    pass\n"), ["export", "{m}:build", "--out", "{out}"], 1, ["has no 'build'"]),
    ("src-import-error", _py("import not_a_module_xyz\n"), ["export", "{m}:build", "--out", "{out}"], 1, ["not_a_module_xyz"]),
    ("src-factory-raises", _py("def build():\n    raise ValueError('no checkpoint')\n"),
     ["export", "{m}:build", "--out", "{out}"], 1, ["factory raised ValueError: no checkpoint"]),
    ("src-factory-not-module", _py("def build():\n    return 42\n"), ["export", "{m}:build", "--out", "{out}"], 1, ["build"]),
    ("src-syntax-error", _py("def build(:\n"), ["export", "{m}:build", "--out", "{out}"], 1, ["m.py"]),
    ("src-untraceable-control-flow", _py(MODULE.format(body="return x * 2 if float(x.sum()) > 0 else x")),
     ["export", "{m}:build", "--input", "x:1x4:float32", "--target", "onnx", "--out", "{out}"], 1, ["m.py:build"]),
    ("src-nan-model", _py(MODULE.format(body="return x * float('nan')")),
     ["export", "{m}:build", "--input", "x:1x4:float32", "--target", "onnx", "--out", "{tmp}/kept"], 1,
     ["validation failed", "non-finite"]),  # a failed validation keeps its bundle (status failed) by design
    ("src-bad-module-path", _none, ["export", "not_a_pkg_xyz.mod:build", "--out", "{out}"], 1, ["not_a_pkg_xyz"]),
    ("src-not-a-spec", _none, ["export", "garbage", "--out", "{out}"], 1, ["garbage", "not a model spec"]),
    ("src-unknown-zoo", _none, ["export", "zoo:nope", "--out", "{out}"], 1, ["nope", "toy"]),
    ("src-bad-zoo-param", _none, ["export", "zoo:toy?width=abc", "--out", "{out}"], 1, ["width"]),
    ("src-missing-pt2", _none, ["export", "{tmp}/m.pt2", "--out", "{out}"], 1, ["m.pt2"]),
    ("src-garbage-pt2", _file("m.pt2", b"\x80\x04garbage"), ["export", "{f}", "--out", "{out}"], 1, ["m.pt2"]),
    # ONNX files
    ("onnx-empty", _file("e.onnx", b""), ["export", "{f}", "--target", "onnx", "--out", "{out}"], 1, ["e.onnx"]),
    ("onnx-truncated", _toy_onnx_prefix, ["export", "{f}", "--target", "onnx", "--out", "{out}"], 1, ["t.onnx"]),
    ("onnx-random-bytes", _file("r.onnx", bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8))),
     ["export", "{f}", "--target", "onnx", "--out", "{out}"], 1, ["r.onnx"]),
    ("onnx-unknown-domain-op", _onnx_model("com.evil", 17), ["export", "{f}", "--target", "onnx", "--out", "{out}"], 1,
     ["m.onnx"]),
    ("onnx-wrong-opset", _onnx_model("", 999), ["export", "{f}", "--target", "onnx", "--out", "{out}"], 1, ["m.onnx"]),
    ("inspect-empty-onnx", _file("e.onnx", b""), ["inspect", "{f}"], 1, ["e.onnx"]),
    ("inspect-random-onnx", _file("r.onnx", b"\x08\x07garbage" * 50), ["inspect", "{f}"], 1, ["r.onnx"]),
    # flags
    ("flag-unknown-target", _none, ["export", TOY, "--target", "bogus", "--out", "{out}"], 1, ["bogus", "onnx"]),
    ("flag-unknown-precision", _none, ["export", TOY, "--precision", "int4", "--out", "{out}"], 1, ["int4"]),
    ("flag-unknown-runtime-validate", _none, ["validate", "{toy}", "-r", "bogus"], 1, ["bogus", "onnxruntime"]),
    ("flag-unknown-runtime-bench", _none, ["bench", "{toy}", "-r", "bogus"], 1, ["bogus", "onnxruntime"]),
    ("flag-unknown-trt-arch", _none, ["export", TOY, "--target", "tensorrt", "--trt-arch", "banana", "--out", "{out}"],
     1, ["--trt-arch BANANA"]),
    ("flag-samples-zero", _none, ["validate", "{toy}", "--samples", "0"], 2, ["--samples"]),
    ("flag-iters-zero", _none, ["bench", "{toy}", "--iters", "0"], 2, ["--iters"]),
    ("flag-timeout-zero", _none, ["bench", "{toy}", "--timeout", "0"], 2, ["--timeout"]),
    ("flag-calib-samples-zero", _none, ["export", TOY, "--calib-samples", "0", "--out", "{out}"], 2, ["--calib-samples"]),
    ("flag-negative-max-drop", _none, ["export", TOY, "--precision", "int8", "--max-drop", "-1", "--out", "{out}"], 1,
     ["--max-drop"]),
    ("flag-static-batch", _none, ["bench", "{toy}", "--batch", "3", "-r", "onnxruntime"], 1, ["--batch 3"]),
    ("flag-feed-syntax", _none, ["validate", "{toy}", "--feed", "threshold"], 1, ["threshold"]),
    ("flag-feed-unknown-input", _none, ["bench", "{toy}", "--feed", "nope=1", "-r", "onnxruntime"], 1, ["nope"]),
    ("flag-input-dtype", _none, ["export", TOY, "--input", "image:1x3x8x8:complex64", "--out", "{out}"], 1,
     ["complex64"]),
    ("flag-bench-precision", _none, ["bench", "{toy}", "--precision", "int4"], 1, ["--precision int4"]),
    ("flag-metric", _none, ["export", TOY, "--precision", "int8", "--metric", "bogus", "--out", "{out}"], 1,
     ["--metric bogus"]),
    # data files
    ("data-missing", _none, ["validate", "{toy}", "--data", "{tmp}/nope.npz"], 1, ["nope.npz", "does not exist"]),
    ("data-empty-file", _file("d.npz", b""), ["validate", "{toy}", "--data", "{f}"], 1, ["d.npz"]),
    ("data-wrong-shape", _npz(image=np.zeros((1, 3, 5), np.float32)), ["validate", "{toy}", "--data", "{f}"], 1,
     ["image"]),
    ("data-wrong-dtype", _npz(image=lambda v: v.astype(np.float64)), ["validate", "{toy}", "--data", "{f}"], 1,
     ["image", "float64"]),
    ("data-missing-input", _npz(image=None), ["validate", "{toy}", "--data", "{f}"], 1, ["lacks", "image"]),
    ("data-nan-feed", _npz(image=lambda v: np.full_like(v, np.nan)), ["validate", "{toy}", "--data", "{f}", "-r",
     "onnxruntime"], 1, ["non-finite"]),
    ("data-inf-feed", _npz(image=lambda v: np.full_like(v, np.inf)), ["validate", "{toy}", "--data", "{f}", "-r",
     "onnxruntime"], 1, ["non-finite"]),
    ("data-pickled-npz", _pickled_npz, ["validate", "{toy}", "--data", "{f}"], 1, ["d.npz"]),
    ("calib-empty-folder", _dir("calib"), ["quantize", "{toy}", "--calib", "{d}", "--out", "{out}"], 1, ["calib"]),
    ("calib-junk-folder", _dir("calib", {"a.png": b"not a png", "b.wav": b"nor a wav"}),
     ["quantize", "{toy}", "--calib", "{d}", "--out", "{out}"], 1, ["calib"]),
    ("calib-pickled-npz", _pickled_npz, ["quantize", "{toy}", "--calib", "{f}", "--out", "{out}"], 1, ["d.npz"]),
    # bundles
    ("bundle-missing-manifest", _dir("b"), ["validate", "{d}"], 1, ["not a bundle"]),
    ("bundle-no-dir", _none, ["bench", "{tmp}/nope"], 1, ["not a bundle"]),
    ("bundle-corrupt-manifest", _manifest(lambda d, t, b: "{not json"), ["validate", "{toy}"], 1,
     ["manifest.json", "unreadable"]),
    ("bundle-manifest-list", _manifest(lambda d, t, b: "[1, 2]"), ["bench", "{toy}"], 1, ["not an edgekit manifest"]),
    ("bundle-foreign-schema", _manifest(_set(["schema"], "edgekit.bundle/9")), ["validate", "{toy}"], 1,
     ["edgekit.bundle/9"]),
    ("bundle-malformed-inputs", _manifest(_set(["inputs"], "image")), ["bench", "{toy}"], 1, ["malformed manifest"]),
    ("bundle-tampered-bin-bench", _damage("model.bin", "flip"), ["bench", "{toy}", "--iters", "2"], 1,
     ["model.bin", "sha256", "manifest"]),
    ("bundle-truncated-onnx-validate", _damage("model.onnx", "truncate"), ["validate", "{toy}"], 1,
     ["model.onnx", "does not match"]),
    ("bundle-missing-xml", _damage("model.xml", "delete"), ["validate", "{toy}", "-r", "openvino"], 1,
     ["model.xml", "missing"]),
    ("bundle-tampered-testdata", _flip_testdata, ["validate", "{toy}", "-r", "onnxruntime"], 1,
     ["testdata", "does not match"]),
    ("bundle-truncated-testdata-noverify", _truncate_testdata, ["validate", "{toy}", "--no-verify", "-r",
     "onnxruntime"], 1, ["truncated or corrupt"]),
    ("bundle-hostile-testdata-path", _hostile_testdata_path, ["validate", "{toy}", "--no-verify", "-r",
     "onnxruntime"], 1, ["leaves the bundle"]),
    ("bundle-dotdot-path", _manifest(_set(["artifacts", "onnx", "path"], "../../../../etc/passwd")),
     ["bench", "{toy}", "-r", "onnxruntime"], 1, ["../../../../etc/passwd", "leaves the bundle"]),
    ("bundle-absolute-path", _manifest(_set(["artifacts", "openvino", "path"], "/etc/hostname")),
     ["validate", "{toy}", "-r", "openvino", "--no-verify"], 1, ["/etc/hostname", "absolute"]),
    ("bundle-symlink-out", _symlink_out, ["validate", "{toy}", "-r", "onnxruntime", "--no-verify"], 1,
     ["symlink", "outside the bundle"]),
    ("bundle-inspect-hostile", _manifest(_set(["artifacts", "onnx", "path"], "../x.onnx")), ["inspect", "{toy}"], 1,
     ["leaves the bundle"]),
    ("bundle-debug-tampered", _damage("model.bin", "flip"), ["debug", "{toy}"], 1, ["model.bin", "sha256"]),
    ("bundle-verify-tampered", _damage("model.onnx", "flip"), ["verify", "{toy}"], 1, ["model.onnx", "sha256"]),
    ("bundle-quantize-tampered", _damage("model.onnx", "flip"), ["quantize", "{toy}", "--out", "{out}"], 1,
     ["model.onnx", "sha256"]),
    ("bundle-evil-source-spec", _evil_source, ["quantize", "{toy}", "--calib", "{tmp}/none", "--out", "{out}"], 1,
     ["none"]),
    ("bundle-evil-pt2", _evil_pt2, ["validate", "{toy}", "-r", "onnxruntime"], 1, ["model.pt2"]),
    # sweep TOML
    ("sweep-syntax", _toml("source = [unclosed\n"), ["sweep", "{f}"], 1, ["s.toml"]),
    ("sweep-unknown-key", _toml(SWEEP.format(out="o", axes='precision = ["fp32"]') + "colour = 1\n"), ["sweep", "{f}"],
     1, ["colour"]),
    ("sweep-empty-axis", _toml(SWEEP.format(out="o", axes="precision = []")), ["sweep", "{f}"], 1, ["precision"]),
    ("sweep-unknown-runtime", _toml(SWEEP.format(out="o", axes='runtime = ["bogus"]')), ["sweep", "{f}"], 1, ["bogus"]),
    ("sweep-missing-file", _none, ["sweep", "{tmp}/nope.toml"], 1, ["nope.toml"]),
]
