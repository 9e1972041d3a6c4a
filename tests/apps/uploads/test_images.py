import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from apps.uploads.images import FileTooLarge, ImageTooLarge, UnsupportedImage, inspect_image
from tests.support import encode


def upload(data: bytes, name: str = "photo.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def rgb(width: int, height: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("image_format", "expected"), [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp")])
def test_accepts_photos_by_content_whatever_their_name(image_format, expected):
    info = inspect_image(upload(encode(rgb(64, 48), image_format), name="notes.txt"))

    assert (info.format, info.width, info.height, info.extension) == (image_format, 64, 48, expected)


def test_reports_upright_size_of_rotated_photos():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb(64, 48)).save(buffer, format="JPEG", exif=exif)

    info = inspect_image(upload(buffer.getvalue()))

    assert (info.width, info.height) == (48, 64)


def test_leaves_the_file_at_its_start_for_storage():
    file = upload(encode(rgb(16, 16)))

    inspect_image(file)

    assert file.read(2) == b"\xff\xd8"


@pytest.mark.parametrize(
    "data",
    [b"", b"just some text, named like a photo", b"\xff\xd8\xff\xe0 a JPEG header and then nothing"],
)
def test_rejects_files_that_are_not_images(data):
    with pytest.raises(UnsupportedImage) as error:
        inspect_image(upload(data))

    assert error.value.code == "unsupported_image"
    assert "JPEG" in error.value.details["accepted_formats"]


def test_rejects_image_formats_that_are_not_photos():
    with pytest.raises(UnsupportedImage, match="ICO images are not supported"):
        inspect_image(upload(encode(rgb(32, 32), "ICO")))


def test_rejects_files_over_the_byte_limit(settings):
    data = encode(rgb(64, 64), "PNG")
    settings.MAX_UPLOAD_BYTES = len(data) - 1

    with pytest.raises(FileTooLarge) as error:
        inspect_image(upload(data))

    assert error.value.details == {"max_bytes": len(data) - 1, "bytes": len(data)}


def test_rejects_images_over_the_pixel_limit(settings):
    settings.MAX_IMAGE_PIXELS = 64 * 64 - 1

    with pytest.raises(ImageTooLarge) as error:
        inspect_image(upload(encode(rgb(64, 64), "PNG")))

    assert error.value.details["pixels"] == 64 * 64
