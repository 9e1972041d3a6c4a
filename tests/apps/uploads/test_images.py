import io
import os
import subprocess
import sys

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image

from apps.uploads.images import (
    MULTIPART_OVERHEAD_BYTES,
    DamagedImage,
    EmptyFile,
    FileTooLarge,
    ImageTooLarge,
    ImageTooSmall,
    UnsupportedImage,
    UploadRejected,
    clean_image,
    inspect_image,
    reject_oversized_body,
)
from ml.images import UnreadableImageError, load_rgb
from tests import corpus
from tests.support import encode


def upload(data: bytes, name: str = "photo.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def rgb(width: int, height: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def cases() -> dict[str, corpus.Case]:
    limits = {
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_image_pixels": settings.MAX_IMAGE_PIXELS,
        "min_image_side": settings.MIN_IMAGE_SIDE,
    }
    return {case.name: case for case in corpus.corpus(**limits)}


# --- the header check ----------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_accepts_photos_by_content_whatever_their_name(image_format):
    info = inspect_image(upload(encode(rgb(64, 48), image_format), name="notes.txt"))

    assert (info.format, info.width, info.height) == (image_format, 64, 48)


def test_reports_upright_size_of_rotated_photos():
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # rotate 90 degrees clockwise to display

    info = inspect_image(upload(encode(rgb(64, 48), exif=exif)))

    assert (info.width, info.height) == (48, 64)


def test_leaves_the_file_at_its_start_for_storage():
    file = upload(encode(rgb(32, 32)))

    inspect_image(file)

    assert file.read(2) == b"\xff\xd8"


def test_an_empty_file_is_said_to_be_empty():
    with pytest.raises(EmptyFile, match="The file is empty.") as error:
        inspect_image(upload(b""))

    assert error.value.code == "empty_file"


@pytest.mark.parametrize("data", [b"just some text, named like a photo", b"<svg xmlns='http://www.w3.org/2000/svg'/>"])
def test_rejects_files_that_are_not_images(data):
    with pytest.raises(UnsupportedImage) as error:
        inspect_image(upload(data))

    assert error.value.code == "unsupported_image"
    assert "JPEG" in error.value.details["accepted_formats"]


@pytest.mark.parametrize(
    ("data", "image_format"),
    [
        (b"\xff\xd8\xff\xe0 a JPEG header and then nothing", "JPEG"),
        (b"\x89PNG\r\n\x1a\n and then nothing", "PNG"),
        (b"GIF89a\x00", "GIF"),
    ],
)
def test_a_file_that_starts_like_an_image_but_will_not_open_is_damaged(data, image_format):
    with pytest.raises(DamagedImage, match=f"starts like a {image_format} image but is damaged") as error:
        inspect_image(upload(data))

    assert (error.value.code, error.value.details) == ("damaged_image", {"format": image_format})


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


def test_a_decompression_bomb_is_refused_from_its_header_alone():
    bomb = corpus.png_bomb()  # 2.5 gigapixels in a few hundred bytes; decoding it would take 2.5 GB

    with pytest.raises(ImageTooLarge, match="megapixels"):
        clean_image(upload(bomb))

    assert len(bomb) < 5000


@pytest.mark.parametrize(("width", "height"), [(1, 1), (23, 500), (500, 23)])
def test_rejects_images_too_small_to_hold_a_face(settings, width, height):
    settings.MIN_IMAGE_SIDE = 24

    with pytest.raises(ImageTooSmall) as error:
        inspect_image(upload(encode(rgb(width, height), "PNG")))

    assert error.value.code == "image_too_small"
    assert error.value.details == {"min_side": 24, "width": width, "height": height}
    assert f"{width} x {height} pixels" in error.value.message


# --- the clean copy that is stored ------------------------------------------------------------------


def test_every_corpus_file_is_cleaned_or_refused_with_its_code(cases):
    for case in cases.values():
        if case.accepted:
            clean = clean_image(upload(case.data))
            assert (clean.width, clean.height) == case.size, case.name
            assert Image.open(io.BytesIO(clean.content)).size == case.size, case.name
        else:
            with pytest.raises(UploadRejected) as error:
                clean_image(upload(case.data))
            assert error.value.code == case.code, case.name
            assert case.words in error.value.message, case.name


def test_the_stored_copy_has_no_metadata(cases):
    clean = clean_image(upload(cases["exif_orientation_6"].data))
    stored = Image.open(io.BytesIO(clean.content))

    assert clean.format == "JPEG" and clean.extension == ".jpg"
    assert dict(stored.getexif()) == {}
    assert not {"exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"} & set(stored.info)
    for secret in (b"Exif", b"CorpusCam", corpus.SECRET_COMMENT, b"corpus-secret-xmp", b"GPS"):
        assert secret not in clean.content


def test_every_exif_orientation_gives_the_same_upright_photo(cases):
    upright = corpus.upright_portrait().astype(np.int16)

    for orientation in range(1, 9):
        clean = clean_image(upload(cases[f"exif_orientation_{orientation}"].data))
        pixels = decoded(clean.content).astype(np.int16)
        assert pixels.shape == upright.shape, orientation
        assert np.abs(pixels - upright).mean() < 4, orientation  # two JPEG generations apart


def test_lossy_photos_stay_jpeg_and_lossless_or_transparent_ones_become_png(cases):
    formats = {name: clean_image(upload(cases[name].data)).format for name in cases if cases[name].accepted}

    assert {formats[name] for name in ("heic", "cmyk_jpeg", "grey_jpeg", "panorama")} == {"JPEG"}
    assert {formats[name] for name in ("png16_rgb", "palette_png", "tiff", "animated_gif")} == {"PNG"}
    assert formats["webp_alpha"] == "PNG"  # lossy, but its transparency was flattened: kept without a new loss


def test_sixteen_bit_images_are_scaled_to_eight_bits_not_clipped_to_white(cases):
    original = np.asarray(Image.fromarray(corpus.astronaut()).convert("L")).astype(np.int16)

    grey = decoded(clean_image(upload(cases["png16_grey"].data)).content).astype(np.int16)
    colour = decoded(clean_image(upload(cases["png16_rgb"].data)).content).astype(np.int16)

    assert grey.shape == (512, 512, 3)
    assert np.abs(grey[..., 0] - original).max() <= 1
    assert np.abs(colour - corpus.astronaut()).max() <= 1


def test_transparency_is_flattened_onto_white(cases):
    pixels = decoded(clean_image(upload(cases["png_alpha"].data)).content)

    assert pixels.shape == (512, 512, 3)
    assert (pixels[:, -150:] == 255).all()  # transparent black underneath: shown as the page behind it
    assert np.array_equal(pixels[:, :-150], corpus.astronaut()[:, :-150])


def test_an_animated_image_keeps_its_first_frame(cases):
    pixels = decoded(clean_image(upload(cases["animated_gif"].data)).content).astype(np.int16)
    first_frame = np.asarray(Image.fromarray(corpus.astronaut()).convert("P").convert("RGB")).astype(np.int16)

    assert np.abs(pixels - first_frame).mean() < 1


def test_cmyk_and_grey_photos_become_rgb_with_their_colours(cases):
    astronaut = corpus.astronaut().astype(np.int16)

    cmyk = decoded(clean_image(upload(cases["cmyk_jpeg"].data)).content).astype(np.int16)
    grey = decoded(clean_image(upload(cases["grey_jpeg"].data)).content)

    assert cmyk.shape == (512, 512, 3) and np.abs(cmyk - astronaut).mean() < 6
    assert grey.shape == (512, 512, 3) and np.array_equal(grey[..., 0], grey[..., 2])


def test_a_truncated_photo_is_refused_at_upload_as_damaged(cases):
    with pytest.raises(DamagedImage, match="damaged or incomplete") as error:
        clean_image(upload(cases["truncated_jpeg"].data))

    assert error.value.details == {"format": "JPEG"}


def test_a_damaged_exif_block_does_not_cost_the_photo():
    data = bytearray(encode(rgb(64, 48), exif=Image.Exif().tobytes() + b"\x00" * 10))
    exif_at = data.index(b"Exif\x00\x00")
    data[exif_at + 6 : exif_at + 14] = b"XX\xff\xff\xff\xff\xff\xff"  # neither II nor MM: unparsable

    clean = clean_image(upload(bytes(data)))

    assert (clean.width, clean.height) == (64, 48)


# --- the worker still reads files stored before the clean copies ----------------------------------------


def test_the_worker_reads_old_files_upright_and_scaled(cases):
    for name in ("png16_grey", "png_alpha", "animated_gif", "exif_orientation_6", "cmyk_jpeg"):
        pixels = load_rgb(cases[name].data)
        assert pixels.dtype == np.uint8 and pixels.shape[2] == 3, name
        assert pixels.shape[:2] == (cases[name].size[1], cases[name].size[0]), name
        assert 60 < pixels.mean() < 200, name  # neither clipped to white nor black


@pytest.mark.parametrize("name", ["truncated_jpeg", "corrupt_header_jpeg", "png_bomb_50k", "svg", "zero_bytes"])
def test_the_worker_says_an_old_file_is_unreadable(cases, name):
    with pytest.raises(UnreadableImageError):
        load_rgb(cases[name].data)


def test_checking_uploads_leaves_tensorflow_unloaded():
    """Web processes run the check; they must stay small and quick to start."""
    code = (
        "import sys, django; django.setup(); import apps.uploads.images, apps.uploads.services; "
        "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mairror.settings"}
    assert subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env).returncode == 0


def test_a_body_longer_than_the_limit_plus_the_multipart_overhead_is_refused_unread(settings):
    settings.MAX_UPLOAD_BYTES = 1000
    reject_oversized_body(str(1000 + MULTIPART_OVERHEAD_BYTES))

    with pytest.raises(FileTooLarge):
        reject_oversized_body(str(1001 + MULTIPART_OVERHEAD_BYTES))
