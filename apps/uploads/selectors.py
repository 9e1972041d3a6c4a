"""Reads of uploads."""

import io

from PIL import Image, ImageOps
from pillow_heif import register_heif_opener

from apps.uploads.models import Upload

register_heif_opener()  # phones send HEIC, which browsers cannot show

DISPLAY_MAX_SIDE = 2048


def upload_get(*, upload_id) -> Upload | None:
    return Upload.objects.filter(pk=upload_id).first()


def uploads_unfinished(*, upload_ids) -> list[str]:
    """Which of these uploads are pending or processing, in the order given: what a client waiting
    for several checks at each change (one query)."""
    unfinished = {
        str(pk)
        for pk in Upload.objects.filter(
            pk__in=upload_ids, status__in=(Upload.Status.PENDING, Upload.Status.PROCESSING)
        ).values_list("pk", flat=True)
    }
    return [str(upload_id) for upload_id in upload_ids if str(upload_id) in unfinished]


def upload_ids_existing(*, upload_ids) -> set[str]:
    """Which of these upload ids still have their upload."""
    return {str(pk) for pk in Upload.objects.filter(pk__in=upload_ids).values_list("pk", flat=True)}


def upload_faces_notice(*, faces_found: int | None, analysed: int) -> str:
    """What to tell people when a crowd was cut to the MAX_FACES_PER_PHOTO largest faces; "" otherwise."""
    if faces_found is None or faces_found <= analysed:
        return ""
    return f"Only the {analysed} largest of the {faces_found} faces found were analysed."


def upload_read_image(*, upload: Upload) -> bytes:
    """The stored photo's bytes. Raises FileNotFoundError when storage no longer has it."""
    with upload.image.storage.open(upload.image.name, "rb") as file:
        return file.read()


def upload_read_display_jpeg(*, upload: Upload, max_side: int = DISPLAY_MAX_SIDE) -> bytes:
    """The photo as any browser can show it: upright (face boxes are in upright pixels, and a re-encoded
    JPEG carries no EXIF orientation for the browser to apply twice), HEIC transcoded, shrunk to
    ``max_side``. Raises FileNotFoundError when storage lost it, OSError when it cannot be decoded.
    """
    with upload.image.storage.open(upload.image.name, "rb") as file:
        image = Image.open(file)
        image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, far faster for big photos
        image = ImageOps.exif_transpose(image).convert("RGB")
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
