"""The bodies a photo may come in besides multipart: the image itself as the body, or JSON with
the image in base64. Whatever the body, the view gets ``request.data["image"]`` and the uploads app
checks it by content, with the same limits and errors."""

import base64
import binascii
import codecs
import json
import re

from django.core.files.base import ContentFile
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, DataAndFiles, FileUploadParser, MultiPartParser

# "data:image/jpeg;base64," as a browser's FileReader or canvas.toDataURL() writes it.
DATA_URL_PREFIX = re.compile(r"^data:[\w.+-]*/?[\w.+-]*(;[\w.+-]+=[\w.+-]+)*;base64,", re.IGNORECASE)
# Base64 costs 4 characters for 3 bytes: a JSON body of n bytes holds a photo of at most 3n/4.
BASE64_BYTES_PER_CHARACTER = 3 / 4


class ImageBodyParser(FileUploadParser):
    """The request body is the photo (``Content-Type: image/jpeg``, ``image/png``, ...), as curl's
    ``--data-binary @photo.jpg`` sends it. A file name is optional (Content-Disposition)."""

    media_type = "image/*"

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        return DataAndFiles({}, {"image": parsed.files["file"]})

    def get_filename(self, stream, media_type, parser_context):
        return super().get_filename(stream, media_type, parser_context) or "photo"


class OctetStreamParser(ImageBodyParser):
    """The photo as the body, for clients that do not know its type (the content decides it anyway)."""

    media_type = "application/octet-stream"


class PhotoJsonParser(BaseParser):
    """JSON read from the request's stream. DRF's own JSONParser is handed ``request.body``, which Django
    caps at DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) with an HTML 400: a phone photo in base64 is larger.
    The view bounds the body by MAX_UPLOAD_BYTES before it is read, as for the other bodies."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json.load(codecs.getreader("utf-8")(stream))
        except ValueError as error:
            raise ParseError(f"The body is not valid JSON: {error}") from error


PHOTO_PARSERS = [MultiPartParser, PhotoJsonParser, ImageBodyParser, OctetStreamParser]


class PhotoField(serializers.FileField):
    """A photo as a file (multipart or the raw body) or as a base64 string (JSON, a ``data:`` URL prefix allowed)."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = ContentFile(decode_base64(data), name="photo")
        return super().to_internal_value(data)


def decode_base64(text: str) -> bytes:
    """The bytes of a base64 string (standard or URL-safe alphabet, line breaks allowed, padding
    optional); a ValidationError that says what is wrong otherwise."""
    text = re.sub(r"\s+", "", DATA_URL_PREFIX.sub("", text.strip(), count=1))
    if text.startswith(("http://", "https://")):
        raise serializers.ValidationError("URLs are not fetched: send the image itself, in base64.")
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise serializers.ValidationError(f"The image is not valid base64 ({error}).") from error
