"""Deciding whether an uploaded file is a photo we accept, from its content (never its name or MIME type)."""

from dataclasses import dataclass

from django.conf import settings
from django.core.files import File
from django.template.defaultfilters import filesizeformat
from PIL import ExifTags, Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

register_heif_opener()  # phones send HEIC

# Pillow format name -> file extension used in storage.
ACCEPTED_FORMATS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",  # multi-picture JPEG, as some cameras write it
    "PNG": ".png",
    "WEBP": ".webp",
    "HEIF": ".heic",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tiff",
}
# EXIF orientations that rotate by 90 degrees, so the upright photo has width and height swapped.
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


class UploadRejected(Exception):
    """The file cannot be accepted; ``code`` is stable for API clients, the message is for people."""

    code = "invalid_upload"

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class FileTooLarge(UploadRejected):
    code = "file_too_large"


class ImageTooLarge(UploadRejected):
    code = "image_too_large"


class UnsupportedImage(UploadRejected):
    code = "unsupported_image"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return ACCEPTED_FORMATS[self.format]


def inspect_image(file: File) -> ImageInfo:
    """Check size, format and pixel count from the file's header; the worker decodes it fully later."""
    reject_oversized(file.size)
    file.seek(0)
    try:
        with Image.open(file) as image:
            info = ImageInfo(image.format, *image.size)
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(None) from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise UnsupportedImage("The file is not an image in a supported format.", _formats()) from error
    finally:
        file.seek(0)

    if info.format not in ACCEPTED_FORMATS:
        raise UnsupportedImage(f"{info.format} images are not supported.", _formats())
    if info.width * info.height > settings.MAX_IMAGE_PIXELS:
        raise _too_many_pixels(info.width * info.height)
    if orientation in TRANSPOSING_ORIENTATIONS:
        return ImageInfo(info.format, info.height, info.width)
    return info


def reject_oversized(size: int) -> None:
    """Raise FileTooLarge for more than MAX_UPLOAD_BYTES (also usable before reading a request body)."""
    if size > settings.MAX_UPLOAD_BYTES:
        raise FileTooLarge(
            f"The file is larger than {filesizeformat(settings.MAX_UPLOAD_BYTES)}.",
            {"max_bytes": settings.MAX_UPLOAD_BYTES, "bytes": size},
        )


def _too_many_pixels(pixels: int | None) -> ImageTooLarge:
    details = {"max_pixels": settings.MAX_IMAGE_PIXELS}
    if pixels is not None:
        details["pixels"] = pixels
    return ImageTooLarge(f"The image has more than {settings.MAX_IMAGE_PIXELS / 1e6:g} megapixels.", details)


def _formats() -> dict:
    return {"accepted_formats": sorted(set(ACCEPTED_FORMATS) - {"MPO"})}
