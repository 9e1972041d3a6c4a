"""Reading photos into the RGB arrays the detector and the models expect."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

try:  # HEIC/HEIF photos from phones, where the optional plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - the plugin is a declared dependency
    pass


class UnreadableImageError(ValueError):
    """The bytes are not an image this library can decode."""


def load_rgb(source: str | Path | bytes) -> np.ndarray:
    """Decode a photo to an upright H x W x 3 uint8 RGB array (EXIF orientation applied)."""
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image = ImageOps.exif_transpose(image)
        return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(f"cannot read the image: {error}") from error
