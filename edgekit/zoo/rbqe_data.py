"""Demo, training and calibration data for zoo:rbqe, built without any download.

Natural images shipped inside the scikit-image wheel are converted to luma (Y, BT.601 full range as in
JFIF) and compressed with Pillow's JPEG encoder; a fixed split holds some images out for evaluation.
Also the RGB ↔ YCbCr helpers that let an RGB JPEG be enhanced on its Y channel.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgekit.errors import SourceError

# Natural photographs in skimage/data (synthetic, binary and tiny images left out). motorcycle_right is
# nearly motorcycle_left, so both stay on the training side.
TRAIN_IMAGES = (
    "astronaut.png", "brick.png", "cell.png", "clock_motion.png", "coffee.png", "grass.png",
    "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
    "page.png", "retina.jpg", "text.png",
)  # fmt: skip
HELDOUT_IMAGES = ("camera.png", "chelsea.png", "coins.png", "gravel.png", "rocket.jpg")
QUALITY_FACTORS = (10, 20, 30, 40, 50)

# JFIF / BT.601 full-range YCbCr: the transform JPEG itself applies, so Y carries the codec's 8×8 grid.
_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float64
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 1] → (..., 3) YCbCr in [0, 1] (chroma offset by 0.5)."""
    ycc = np.asarray(rgb, dtype=np.float64) @ _RGB_TO_YCBCR.T
    ycc[..., 1:] += 0.5
    return ycc.astype(np.float32)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_ycbcr` (not clipped)."""
    ycc = np.array(ycc, dtype=np.float64)
    ycc[..., 1:] -= 0.5
    return (ycc @ _YCBCR_TO_RGB.T).astype(np.float32)


def rgb_to_ycbcr_torch(rgb):
    """(B, 3, H, W) torch RGB → (B, 3, H, W) YCbCr, same convention as `rgb_to_ycbcr`."""
    import torch

    m = torch.as_tensor(_RGB_TO_YCBCR, dtype=rgb.dtype, device=rgb.device)
    offset = torch.tensor([0.0, 0.5, 0.5], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, rgb) + offset


def ycbcr_to_rgb_torch(ycc):
    """(B, 3, H, W) torch YCbCr → RGB."""
    import torch

    m = torch.as_tensor(_YCBCR_TO_RGB, dtype=ycc.dtype, device=ycc.device)
    offset = torch.tensor([0.0, 0.5, 0.5], dtype=ycc.dtype, device=ycc.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, ycc - offset)


def _data_dir() -> Path:
    try:
        import skimage
    except ImportError:
        raise SourceError("zoo:rbqe demo data needs scikit-image (pip install scikit-image pillow)") from None
    return Path(skimage.__file__).parent / "data"


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise SourceError("zoo:rbqe demo data needs Pillow (pip install pillow)") from None
    return Image


def _crop32(array: np.ndarray) -> np.ndarray:
    """Crop H and W down to multiples of 32 (RBQE's five down-samplings)."""
    h, w = array.shape[:2]
    return array[: h - h % 32, : w - w % 32]


@lru_cache(maxsize=None)
def _load_rgb_or_gray(name: str) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3), cropped to multiples of 32."""
    image = _pil().open(_data_dir() / name)
    image = image.convert("L" if image.mode in ("L", "I", "I;16") else "RGB")
    return _crop32(np.asarray(image, dtype=np.uint8))


def _luma(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        return array.astype(np.float32) / 255.0
    return rgb_to_ycbcr(array.astype(np.float32) / 255.0)[..., 0]


def demo_images(split: str = "heldout") -> dict[str, np.ndarray]:
    """name → clean luma (H, W) float32 in [0, 1]; split is "train", "heldout" or "all"."""
    names = {"train": TRAIN_IMAGES, "heldout": HELDOUT_IMAGES, "all": TRAIN_IMAGES + HELDOUT_IMAGES}
    if split not in names:
        raise SourceError(f"unknown split {split!r} (valid: {', '.join(names)})")
    return {name: _luma(_load_rgb_or_gray(name)) for name in names[split]}


@lru_cache(maxsize=None)
def _compressed_luma(name: str, qf: int) -> np.ndarray:
    """Encode the image (RGB with Pillow's 4:2:0 default, or grayscale) at quality qf, decode, take Y."""
    array = _load_rgb_or_gray(name)
    buffer = io.BytesIO()
    _pil().fromarray(array).save(buffer, format="JPEG", quality=int(qf))
    decoded = np.asarray(_pil().open(io.BytesIO(buffer.getvalue())))
    return _luma(decoded)


def compressed_pairs(qf: int, split: str = "heldout") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(name, compressed luma, clean luma)] for every image of the split at JPEG quality `qf`."""
    clean = demo_images(split)
    return [(name, _compressed_luma(name, qf), target) for name, target in clean.items()]


def jpeg_luma(clean: np.ndarray, qf: int) -> tuple[np.ndarray, np.ndarray]:
    """(compressed, clean) luma pair from a clean luma crop in [0, 1]: the crop is rounded to uint8 and
    JPEG-encoded as a grayscale image at quality `qf` (the luma plane of an RGB JPEG is coded with the
    same quantisation table). Training augmentation: any crop, scale and QF, not only the fixed pairs."""
    gray = np.clip(np.rint(np.asarray(clean, np.float64) * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    _pil().fromarray(gray).save(buffer, format="JPEG", quality=int(qf))
    decoded = np.asarray(_pil().open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255.0
    return decoded, gray.astype(np.float32) / 255.0


def resized_luma(clean: np.ndarray, size: int) -> np.ndarray:
    """A square luma crop in [0, 1] resized to size×size (Pillow bicubic, antialiased when shrinking)."""
    image = _pil().fromarray(np.asarray(clean, np.float32), mode="F")
    return np.asarray(image.resize((size, size), _pil().BICUBIC), dtype=np.float32).clip(0.0, 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
