"""Reading one image file into a BGR array, with errors that say what is wrong."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edged.errors import ImageError
from edged.files import read_user_file
from edged.types import ImageArray

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def read_image(path: Path) -> ImageArray:
    """The image at `path` as H×W×3 uint8 BGR (greyscale and alpha are converted)."""
    data = np.frombuffer(read_user_file(path, "image", ImageError, missing_hint="check the path"), np.uint8)
    if data.size == 0:
        raise ImageError(f"image {path} is empty (0 bytes)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(
            f"image {path} cannot be decoded: not an image, truncated, or a format OpenCV does not read "
            f"(use JPEG, PNG, BMP, WebP or TIFF)"
        )
    decoded: ImageArray = np.asarray(image, dtype=np.uint8)
    return decoded


def written_path(path: Path) -> Path:
    """Where `write_image(path, ...)` writes: `path`, or `path` with .jpg for a suffix OpenCV cannot encode."""
    return path if path.suffix.lower() in IMAGE_SUFFIXES else path.with_suffix(".jpg")


def write_image(path: Path, image: ImageArray) -> None:
    """Write an image, choosing the format from the suffix; ImageError when it cannot be written."""
    target = written_path(path)
    suffix = target.suffix.lower()
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise ImageError(f"cannot encode {path} as {suffix}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        encoded.tofile(target)
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from exc
