"""Whatever a person hands us (bytes of any common format, a path, arrays in any dtype/channel layout)
-> a BGR uint8 array, or `ImageError` with a sentence a person understands.

Used by the photo page, `python -m core annotate`, the benches and the tests; the face pipeline
(core.pipeline) starts from its output.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

#: Larger images are refused before decoding (a decompression bomb is a few KB of PNG).
MAX_PIXELS = 60_000_000


class ImageError(ValueError):
    """The input cannot be used as an image; str(error) is a message for a person."""


def load_image(source: bytes | str | os.PathLike | np.ndarray, channel_order: str = "BGR") -> np.ndarray:
    """Any image -> BGR uint8 (H, W, 3). Bytes and paths are decoded with EXIF orientation applied."""
    if isinstance(source, np.ndarray):
        return to_bgr_uint8(source, channel_order)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path} does not exist or is not a file.")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise ImageError("The file is empty.")
    _check_header(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # applies EXIF orientation
    if image is None or image.size == 0:
        raise ImageError("The file is corrupt or truncated: it could not be decoded as an image.")
    return image


def _check_header(data: bytes) -> None:
    """Read only the header (Pillow) to refuse non-images and decompression bombs before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:
        raise ImageError(f"The image is too large to process safely ({exc}).") from exc
    except Exception as exc:
        raise ImageError("This is not an image file Pillow or OpenCV can read (try JPEG, PNG, WebP or BMP).") from exc
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The image is {width}x{height} = {width * height / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Please downscale it."
        )
    if width == 0 or height == 0:
        raise ImageError("The image has no pixels.")


def to_bgr_uint8(array: np.ndarray, channel_order: str = "BGR") -> np.ndarray:
    """Gray, gray+1, RGB/BGR, RGBA/BGRA of uint8, uint16 or float [0, 1] -> BGR uint8."""
    a = np.asarray(array)
    if a.size == 0 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ImageError(f"An image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {a.shape}.")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise ImageError(f"The image is {a.shape[1]}x{a.shape[0]}, over the {MAX_PIXELS / 1e6:.0f}-megapixel limit.")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ImageError(f"Unsupported pixel type {a.dtype}.")
    if a.ndim == 2 or a.shape[2] == 1:
        return cv2.cvtColor(a.reshape(a.shape[:2]), cv2.COLOR_GRAY2BGR)
    rgb_first = channel_order.upper().startswith("RGB")
    if a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_RGBA2BGR if rgb_first else cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(a[..., ::-1]) if rgb_first else a


def shrink_to(image: np.ndarray, max_side: int) -> np.ndarray:
    """A copy no larger than `max_side` on its long side (INTER_AREA), or the image itself when it fits:
    what a browser needs to show a 12-megapixel photo, at a fraction of the bytes."""
    scale = max_side / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
