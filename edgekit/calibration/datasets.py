"""Calibration data sets: each is a list of feed dicts (input name → numpy array) checked against the
model's inputs. Sources: `.npz`/`.npy` feed files or a folder of them (layouts: `edgekit.feedfiles`), a
folder of images, a folder of wav files, a Python `file.py:fn` that yields feeds, or the model's own
`calibration_feeds(n)` hook (zoo models ship data).

`--calib-samples N` takes a deterministic, evenly spread subset of N items (sorted file names).
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.feedfiles import FEED_SUFFIXES, is_feed_path, load_feed_file
from edgekit.specs import TensorSpec, feed_problem, np_dtype

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
AUDIO_SUFFIXES = (".wav",)


def load_calibration(spec: str | None, inputs: list[TensorSpec], example: dict[str, np.ndarray],
                     samples: int, model=None) -> list[dict[str, np.ndarray]]:
    """Resolve `--calib` (or the model's hook when `spec` is None) to at most `samples` checked feeds."""
    if spec is None:
        hook = getattr(model, "calibration_feeds", None)
        if not callable(hook):
            raise EdgekitError("int8 needs calibration data: pass --calib PATH (an image or audio folder, "
                               "a feeds .npz or file.py:fn)")
        feeds = [{k: _numpy(v) for k, v in f.items()} for f in hook(samples)]
        where = "the model's calibration_feeds()"
    else:
        feeds, where = _from_spec(spec, inputs, example, samples, model)
    if not feeds:
        raise EdgekitError(f"--calib {spec or where}: no calibration samples")
    return [_complete(f, inputs, example, where) for f in _subset(feeds, samples)]


def _from_spec(spec, inputs, example, samples, model):
    path_text, sep, fn = spec.rpartition(":")
    if sep and path_text.endswith(".py"):
        return _from_python(Path(path_text), fn, samples), spec
    path = Path(spec)
    if not path.exists():
        raise EdgekitError(f"--calib {spec}: does not exist")
    if not path.is_dir():
        if path.suffix.lower() not in FEED_SUFFIXES:
            raise EdgekitError(f"--calib {spec}: expected a folder, a .npz, a .npy or file.py:fn")
        return load_feed_file(path, inputs, "--calib", defaults=example), spec
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES)
    if not files and is_feed_path(path):  # arrays: .npz/.npy layouts of edgekit.feedfiles
        return load_feed_file(path, inputs, "--calib", defaults=example), spec
    if not files:
        raise EdgekitError(f"--calib {spec}: no images ({', '.join(IMAGE_SUFFIXES)}), wav, .npz or .npy files "
                           "in the folder")
    files = _subset(files, samples)
    target = _tensor_input(inputs, spec)
    reader = _image_feed if files[0].suffix.lower() in IMAGE_SUFFIXES else _audio_feed
    preprocess = getattr(model, "calibration_preprocess", None)
    return [reader(f, target, example, preprocess) for f in files], spec


def _tensor_input(inputs: list[TensorSpec], where: str) -> TensorSpec:
    """The input a file feeds: the (first) float tensor input; scalars keep their example values."""
    candidates = [s for s in inputs if s.is_float and len(s.shape) >= 2]
    if not candidates:
        raise EdgekitError(f"--calib {where}: the model has no float tensor input for files to feed")
    return candidates[0]


def _image_feed(path: Path, spec: TensorSpec, example, preprocess: Callable | None) -> dict:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise EdgekitError(f"--calib {path}: unreadable image ({exc})") from exc
    if preprocess is not None:
        return {spec.name: np.asarray(preprocess(image), dtype=np_dtype(spec.dtype))}
    shape = np.asarray(example[spec.name]).shape
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise EdgekitError(f"--calib {path}: input {spec.name!r} has shape {list(spec.shape)}, not an image "
                           "batch [N, 1|3, H, W]; use a .npz of feeds or file.py:fn")
    image = image.convert("L" if shape[1] == 1 else "RGB").resize((shape[3], shape[2]), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return {spec.name: np.broadcast_to(array[None], shape).astype(np_dtype(spec.dtype))}


def _audio_feed(path: Path, spec: TensorSpec, example, preprocess: Callable | None) -> dict:
    try:
        with wave.open(str(path)) as handle:
            rate, width, channels = handle.getframerate(), handle.getsampwidth(), handle.getnchannels()
            frames = handle.readframes(handle.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise EdgekitError(f"--calib {path}: unreadable wav ({exc})") from exc
    if width != 2:
        raise EdgekitError(f"--calib {path}: {8 * width}-bit wav; 16-bit PCM expected")
    audio = np.frombuffer(frames, "<i2").reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0
    if preprocess is not None:
        return {spec.name: np.asarray(preprocess(audio, rate), dtype=np_dtype(spec.dtype))}
    shape = np.asarray(example[spec.name]).shape
    length = shape[-1]
    audio = np.pad(audio, (0, max(0, length - audio.size)))[:length]
    return {spec.name: np.broadcast_to(audio, shape).astype(np_dtype(spec.dtype))}


def _from_python(path: Path, fn: str, samples: int) -> list[dict]:
    from edgekit.pyfile import function_from_file

    generator = function_from_file(path, fn, "--calib")
    feeds = []
    try:
        for feed in generator():
            feeds.append({k: _numpy(v) for k, v in feed.items()})
            if len(feeds) >= samples:
                break
    except Exception as exc:
        raise EdgekitError(f"--calib {path}:{fn} raised {type(exc).__name__}: {exc}") from exc
    return feeds


def _subset(items: list, count: int) -> list:
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in picks]


def _complete(feed: dict, inputs: list[TensorSpec], example: dict, where: str) -> dict:
    by_name = {s.name: s for s in inputs}
    unknown = set(feed) - set(by_name)
    if unknown:
        raise EdgekitError(f"--calib {where}: feed names unknown input(s) {', '.join(sorted(unknown))} "
                           f"(inputs: {', '.join(by_name)})")
    out = {}
    for name, spec in by_name.items():
        value = np.asarray(feed.get(name, example[name]))
        problem = feed_problem(value, spec)
        if problem:
            raise EdgekitError(f"--calib {where}: input {name!r} {problem}")
        out[name] = value
    return out


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
