"""Reads of uploads."""

from apps.uploads.models import Upload


def upload_get(*, upload_id) -> Upload | None:
    return Upload.objects.filter(pk=upload_id).first()


def upload_read_image(*, upload: Upload) -> bytes:
    """The stored photo's bytes. Raises FileNotFoundError when storage no longer has it."""
    with upload.image.storage.open(upload.image.name, "rb") as file:
        return file.read()
