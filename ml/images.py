"""Reading photos into the RGB arrays the detector and the models expect.

Only Pillow and numpy: the upload check in the web processes shares :func:`to_rgb` with the worker.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms

try:  # HEIC/HEIF photos from phones, where the optional plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - the plugin is a declared dependency
    pass

# Transparent pixels become white: what a browser shows behind a cut-out portrait or a sticker on a
# light page, so the photo analysed looks like what the sender saw; the colour hidden under fully
# transparent pixels is arbitrary (often black) and would show as a frame or blotches otherwise.
ALPHA_BACKGROUND = (255, 255, 255)
# EXIF orientation -> the transposition that makes the photo upright (as ImageOps.exif_transpose).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class UnreadableImageError(ValueError):
    """The bytes are not an image this library can decode."""


def load_rgb(source: str | Path | bytes) -> np.ndarray:
    """Decode a photo to an upright H x W x 3 uint8 RGB array (EXIF orientation applied).

    Animated images give their first frame, 16-bit ones are scaled to 8 bits, transparency is
    flattened onto white (:func:`to_rgb`). Any failure to decode is an ``UnreadableImageError``.
    """
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            transposition = UPRIGHT.get(exif_orientation(image))
            image.load()
            rgb, _ = to_rgb(image)
        if transposition is not None:
            rgb = rgb.transpose(transposition)
        return np.asarray(rgb)
    except Exception as error:  # noqa: BLE001 - whatever a decoder trips over in hostile bytes, the photo is unreadable
        raise UnreadableImageError(f"cannot read the image: {error}") from error


def to_rgb(image: Image.Image) -> tuple[Image.Image, bool]:
    """8-bit RGB of any Pillow image, and whether it had transparency (flattened onto ALPHA_BACKGROUND)."""
    if image.mode in SIXTEEN_BIT_MODES:
        # Pillow's convert clips 16-bit values at 255 (a nearly white photo): scale 0..65535 to 0..255.
        levels = np.asarray(image).astype(np.float32).clip(0, 65535) / 257
        image = Image.fromarray(levels.round().astype(np.uint8))
    elif image.mode == "F":  # floating-point TIFF: 0..1 if it is all within that, else 0..255
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        values = values.clip(0, 1) * 255 if values.max() <= 1 else values.clip(0, 255)
        image = Image.fromarray(values.round().astype(np.uint8))
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat, True
    if image.mode == "CMYK" and image.info.get("icc_profile"):
        return _cmyk_to_srgb(image), False
    return image.convert("RGB"), False


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 when there is none or the EXIF block cannot be parsed (the pixels may be fine)."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not cost the photo
        return 1
    return value if value in UPRIGHT else 1


def _cmyk_to_srgb(image: Image.Image) -> Image.Image:
    """CMYK through its own ICC profile when it has a usable one (print colours are far from
    Pillow's plain formula), else that formula."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        return ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image.convert("RGB")
