"""Deciding whether an uploaded file is a photo we accept, from its content (never its name or MIME type),
and the clean copy of it that we store.

The clean copy is the photo decoded once, upright, in 8-bit RGB and re-encoded without any metadata
(EXIF with GPS, XMP, ICC profiles, comments): what people send must not keep where they were, and the
worker, the page and the bot then read one simple kind of file. Only Pillow (and, to check that a
JPEG's data is all there, libjpeg-turbo through simplejpeg) runs here: web processes.
"""

import io
import logging
from dataclasses import dataclass
from http import HTTPStatus

import simplejpeg
from django.conf import settings
from django.core.files import File
from django.template.defaultfilters import filesizeformat
from PIL import Image, UnidentifiedImageError

from ml.images import UPRIGHT, exif_orientation, to_rgb  # Pillow only (which also reads HEIC): no TensorFlow here

logger = logging.getLogger(__name__)

# Pillow format names we accept ("MPO": multi-picture JPEG, as some cameras write it).
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "HEIF", "GIF", "BMP", "TIFF"}
# Stored as JPEG: their pixels already went through lossy compression, a PNG of them would only be
# larger. Everything else, and any image with transparency, is stored as PNG, which loses nothing.
LOSSY_FORMATS = {"JPEG", "MPO", "WEBP", "HEIF"}
STORED_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png"}
JPEG_QUALITY = 92
# zlib's level 3: the default, 6, took 1.5-1.8 times as long (about 3 s for a 12 MP photo on 2 cores)
# for 11% smaller files (bench/upload_sanitize.py).
PNG_COMPRESS_LEVEL = 3


# Room for the multipart boundaries and headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class UploadRejected(Exception):
    """The file cannot be accepted; ``code`` is stable for API clients, the message is for people.

    ``status_code`` is the HTTP status the API and the page answer with: 400, which the API schema
    documents for invalid requests, unless a subclass says more precisely what is wrong.
    """

    code = "invalid_upload"
    status_code = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class EmptyFile(UploadRejected):
    code = "empty_file"


class FileTooLarge(UploadRejected):
    code = "file_too_large"
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class ImageTooLarge(UploadRejected):
    code = "image_too_large"
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class ImageTooSmall(UploadRejected):
    code = "image_too_small"


class UnsupportedImage(UploadRejected):
    code = "unsupported_image"
    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class DamagedImage(UploadRejected):
    code = "damaged_image"


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: the format, and the size of the upright photo."""

    format: str
    width: int
    height: int


@dataclass(frozen=True)
class CleanImage:
    """The photo as we store it: upright 8-bit RGB, JPEG or PNG, no metadata."""

    content: bytes
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return STORED_EXTENSIONS[self.format]


def inspect_image(file: File) -> ImageInfo:
    """Check size, format and pixel count from the file's header alone, before anything is decoded."""
    if file.size == 0:
        raise EmptyFile("The file is empty.")
    reject_oversized(file.size)
    file.seek(0)
    try:
        with Image.open(file) as image:
            info = ImageInfo(image.format, *image.size)
            orientation = exif_orientation(image)
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(None) from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        file.seek(0)
        claimed = _format_by_signature(file.read(16))
        if claimed:
            raise DamagedImage(
                f"The file starts like a {claimed} image but is damaged: it cannot be read.", {"format": claimed}
            ) from error
        raise UnsupportedImage("The file is not an image in a supported format.", _formats()) from error
    finally:
        file.seek(0)

    if info.format not in ACCEPTED_FORMATS:
        raise UnsupportedImage(f"{info.format} images are not supported.", _formats())
    if info.width * info.height > settings.MAX_IMAGE_PIXELS:
        raise _too_many_pixels(info.width * info.height)
    if min(info.width, info.height) < settings.MIN_IMAGE_SIDE:
        raise ImageTooSmall(
            f"The image is {info.width} x {info.height} pixels; it needs at least {settings.MIN_IMAGE_SIDE} "
            "pixels on each side to hold a face.",
            {"min_side": settings.MIN_IMAGE_SIDE, "width": info.width, "height": info.height},
        )
    if orientation in (5, 6, 7, 8):  # turned by 90 degrees: the upright photo's sides are swapped
        return ImageInfo(info.format, info.height, info.width)
    return info


def clean_image(file: File) -> CleanImage:
    """The copy to store: checked (``inspect_image``), decoded once, upright, 8-bit RGB, no metadata.

    Decoding here means a damaged or incomplete file is refused at upload, with a reason, instead of
    failing later in the worker. Animated images keep their first frame. Raises ``UploadRejected``.
    """
    info = inspect_image(file)
    try:
        with Image.open(file) as image:
            lossy = image.format in LOSSY_FORMATS
            transposition = UPRIGHT.get(exif_orientation(image))
            image.load()  # the first frame, whole: a truncated file fails here
            if image.format in {"JPEG", "MPO"}:
                _reject_jpeg_with_missing_data(file)
            image, had_alpha = to_rgb(image)
            if transposition is not None:
                image = image.transpose(transposition)
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(None) from error
    except DamagedImage:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a decoder trips over in hostile bytes, the file is unreadable
        logger.info("refused a damaged %s upload: %r", info.format, error)
        raise DamagedImage(
            "The image is damaged or incomplete: it cannot be read to the end. Please send the original file.",
            {"format": info.format},
        ) from error
    finally:
        file.seek(0)

    stored_format = "JPEG" if lossy and not had_alpha else "PNG"
    image.info = {}  # nothing of the original's metadata (EXIF, ICC, XMP, comments) reaches the encoder
    buffer = io.BytesIO()
    if stored_format == "JPEG":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return CleanImage(buffer.getvalue(), stored_format, image.width, image.height)


def _reject_jpeg_with_missing_data(file: File) -> None:
    """A JPEG whose scan ends before its frame does (a header saying 6000 x 6000 over data for 640 x 360,
    then an end marker) decodes without an error in Pillow: libjpeg fills the rest with grey and only
    warns. libjpeg-turbo's strict mode, at 1/8 scale (all the data is still read), turns that warning
    into an error; other warnings (extraneous bytes between markers, as some cameras write) are let be.
    """
    file.seek(0)
    data = file.read()
    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True, min_height=1, min_width=1, min_factor=8)
    except ValueError as error:
        if "premature end" not in str(error).lower():
            logger.info("accepted a JPEG despite a decoder warning: %s", error)
            return
        logger.info("refused a JPEG whose data ends before its frame does: %s", error)
        raise DamagedImage(
            "The image is damaged or incomplete: its data ends before the picture does. Please send the original file.",
            {"format": "JPEG"},
        ) from error


def reject_oversized_body(content_length: str | None) -> None:
    """Raise FileTooLarge for a multipart body (``CONTENT_LENGTH``) too long to hold an acceptable
    photo: checked before the body is read, not after it was spooled to disk."""
    try:
        size = int(content_length or 0)
    except ValueError:
        return  # no usable length: the file's own size is checked once it is read
    reject_oversized(size - MULTIPART_OVERHEAD_BYTES)


def reject_oversized(size: int) -> None:
    """Raise FileTooLarge for more than MAX_UPLOAD_BYTES (also usable before reading a request body)."""
    if size > settings.MAX_UPLOAD_BYTES:
        raise FileTooLarge(
            f"The file is larger than {filesizeformat(settings.MAX_UPLOAD_BYTES)}.",
            {"max_bytes": settings.MAX_UPLOAD_BYTES, "bytes": size},
        )


def _format_by_signature(head: bytes) -> str | None:
    """The accepted format a file's first bytes announce, if any (a damaged file still starts like one)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc"):
        return "HEIF"
    return None


def _too_many_pixels(pixels: int | None) -> ImageTooLarge:
    details = {"max_pixels": settings.MAX_IMAGE_PIXELS}
    if pixels is not None:
        details["pixels"] = pixels
    return ImageTooLarge(f"The image has more than {settings.MAX_IMAGE_PIXELS / 1e6:g} megapixels.", details)


def _formats() -> dict:
    return {"accepted_formats": sorted(ACCEPTED_FORMATS - {"MPO"})}
