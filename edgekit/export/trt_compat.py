"""The one seam between edgekit and the two TensorRT flavours: full TensorRT (`tensorrt`, servers and
Jetson) and TensorRT-RTX (`tensorrt_rtx`, same builder/parser/runtime API). Also answers "is there a
CUDA GPU, and which compute capability?" without importing torch, and parses `--trt-arch` lists.

TensorRT-RTX builds without a GPU for the compute capabilities named in the builder config; full
TensorRT has no such API and builds for the GPU it runs on only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from edgekit.errors import EdgekitError, missing_extra

# Used when no GPU is visible: Ampere and Ada workstation/consumer GPUs, the common edge-box targets.
DEFAULT_ARCHS = ("SM86", "SM89")

_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


def import_tensorrt():
    """Return the `tensorrt` module if importable, else `tensorrt_rtx`.

    Raises BackendUnavailable (naming the `tensorrt` extra) when neither imports.
    """
    try:
        import tensorrt
    except (ImportError, OSError):  # OSError: a tensorrt wheel whose libraries cannot load
        try:
            import tensorrt_rtx as tensorrt
        except ImportError:
            raise missing_extra("tensorrt", "tensorrt-rtx-cu12", "tensorrt") from None
    return tensorrt


def is_rtx(trt) -> bool:
    return trt.__name__.split(".")[0] == "tensorrt_rtx"


def builder_name(trt) -> str:
    """The builder as recorded in the manifest, e.g. "tensorrt_rtx 1.7.1.116"."""
    return f"{trt.__name__.split('.')[0]} {trt.__version__}"


def names_archs(trt) -> bool:
    """Whether this TensorRT builds for named compute capabilities (TensorRT-RTX does)."""
    return hasattr(trt, "ComputeCapability")


def valid_archs(trt) -> list[str]:
    """The compute capabilities this builder can target by name ("SM75", "SM86", ...)."""
    if not names_archs(trt):
        return []
    return [n for n in trt.ComputeCapability.__members__ if n.startswith("SM")]


@functools.lru_cache(maxsize=1)
def _libcuda():
    """The CUDA driver library initialised, or None (no driver, no device, or cuInit failed)."""
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    if lib.cuInit(0) != 0:
        return None
    return lib


def cuda_device_count() -> int:
    # The driver API (libcuda) is the lightest check: no torch import, no nvidia-smi subprocess, and it
    # honours CUDA_VISIBLE_DEVICES like every CUDA program does.
    lib = _libcuda()
    count = ctypes.c_int(0)
    if lib is None or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def cuda_device_available() -> bool:
    return cuda_device_count() > 0


def current_compute_capability(device: int = 0) -> str | None:
    """Compute capability of CUDA device `device` as "SM86", or None when there is no such device."""
    if device >= cuda_device_count():
        return None
    lib = _libcuda()
    handle, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    if lib.cuDeviceGet(ctypes.byref(handle), device) != 0:
        return None
    lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle)
    return f"SM{major.value}{minor.value}"


def default_archs(trt) -> list[str]:
    """The current GPU's compute capability when one is visible, else DEFAULT_ARCHS (named-arch builders).

    Raises EdgekitError with full TensorRT and no GPU: it can only build for the GPU it runs on.
    """
    current = current_compute_capability()
    if current and names_archs(trt) and current not in valid_archs(trt):
        raise EdgekitError(f"tensorrt: this GPU is {current}, which {builder_name(trt)} cannot build for; name "
                           f"the targets with --trt-arch (valid: {', '.join(valid_archs(trt))})")
    if current:
        return [current]
    if not names_archs(trt):
        raise EdgekitError(f"tensorrt: {builder_name(trt)} builds only for the GPU it runs on and no CUDA device "
                           "is visible; install tensorrt-rtx-cu12 to build for named compute capabilities")
    return list(DEFAULT_ARCHS)


def parse_arch_list(text: str | list[str] | None, trt=None) -> list[str]:
    """Parse "sm86,sm89" / ["SM86"] / "current" into canonical names ["SM86", "SM89"].

    None or "" gives the default list. Raises EdgekitError for a name the builder does not know (listing
    the valid ones), for "current" without a GPU, and for named archs with full TensorRT, which can
    only build for the GPU it runs on.
    """
    trt = trt or import_tensorrt()
    if not text:
        return default_archs(trt)
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = [p.strip().upper() for p in parts if p.strip()]
    valid = valid_archs(trt)
    archs: list[str] = []
    for name in names:
        if name == "CURRENT":
            name = current_compute_capability()
            if name is None:
                raise EdgekitError("--trt-arch current: no CUDA device is visible"
                                   + (f"; name the targets instead (valid: {', '.join(valid)})" if valid else ""))
        name = name.replace("_", "").replace(".", "")  # also accept sm_86, 8.6, 86
        if name.isdigit():
            name = f"SM{name}"
        if names_archs(trt) and name not in valid:
            raise EdgekitError(f"--trt-arch {name}: {builder_name(trt)} cannot build for it "
                               f"(valid: {', '.join(valid)}, current)")
        if not names_archs(trt) and name != current_compute_capability():
            raise EdgekitError(
                f"--trt-arch {name}: {builder_name(trt)} builds only for the GPU it runs on "
                f"({current_compute_capability() or 'none visible'}); install tensorrt-rtx-cu12 to build "
                "for named compute capabilities"
            )
        if name not in archs:
            archs.append(name)
    if not archs:
        raise EdgekitError(f"--trt-arch {text!r}: no compute capability named (valid: {', '.join(valid)}, current)")
    return archs
