"""The photo as the raw body or as base64 in JSON: the same checks by content, limits and errors as multipart."""

import base64
import json

import pytest

from apps.api.parsers import decode_base64
from apps.uploads.models import Upload
from tests.support import stored_files

LIST_URL = "/api/v1/predictions"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


def accepted(response) -> Upload:
    assert response.status_code == 202, response.content
    return Upload.objects.get(pk=response.json()["id"])


def post_json(client, body):
    return client.post(LIST_URL, json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/octet-stream"])
def test_the_photo_as_the_body_is_taken_whatever_type_it_is_sent_as(api_client, one_face_jpeg, content_type):
    """The declared type does not decide the format: the content does (a JPEG sent as image/png is a JPEG)."""
    upload = accepted(api_client.post(LIST_URL, one_face_jpeg, content_type=content_type))

    assert (upload.width, upload.height) == (512, 512)
    assert upload.image.name.endswith(".jpg")


def test_a_raw_body_with_a_file_name_keeps_working(api_client, one_face_jpeg):
    response = api_client.post(
        LIST_URL, one_face_jpeg, content_type="image/jpeg", HTTP_CONTENT_DISPOSITION='attachment; filename="me.jpg"'
    )

    accepted(response)


def test_a_raw_body_that_is_not_an_image_is_refused_as_multipart_would_be(api_client):
    before = stored_files()

    error = assert_error(
        api_client.post(LIST_URL, b"<html>hello</html>", content_type="image/jpeg"), 415, "unsupported_image"
    )

    assert error["message"] == "The file is not an image in a supported format."
    assert not Upload.objects.exists()
    assert stored_files() == before


def test_an_empty_raw_body_is_invalid(api_client):
    error = assert_error(api_client.post(LIST_URL, b"", content_type="image/jpeg"), 400, "invalid")

    assert "image" in error["details"]


def test_a_raw_body_over_the_size_limit_is_refused(api_client, settings, one_face_jpeg):
    settings.MAX_UPLOAD_BYTES = len(one_face_jpeg) // 2

    assert_error(api_client.post(LIST_URL, one_face_jpeg, content_type="image/jpeg"), 413, "file_too_large")
    assert not Upload.objects.exists()


@pytest.mark.parametrize(
    "encode",
    [
        lambda data: base64.b64encode(data).decode(),
        lambda data: "data:image/jpeg;base64," + base64.b64encode(data).decode(),
        lambda data: "data:application/octet-stream;base64," + base64.b64encode(data).decode(),
        lambda data: base64.urlsafe_b64encode(data).decode().rstrip("="),
        lambda data: base64.encodebytes(data).decode(),  # MIME: a line break every 76 characters
    ],
    ids=["plain", "data-url", "data-url-octet-stream", "urlsafe-unpadded", "with-line-breaks"],
)
def test_the_photo_in_base64_json_is_taken(api_client, one_face_jpeg, encode):
    upload = accepted(post_json(api_client, {"image": encode(one_face_jpeg)}))

    assert (upload.width, upload.height) == (512, 512)


def test_base64_that_is_not_base64_is_invalid_and_says_so(api_client):
    error = assert_error(post_json(api_client, {"image": "not base64 at all!"}), 400, "invalid")

    assert "not valid base64" in error["details"]["image"][0]


def test_a_url_is_not_fetched(api_client):
    error = assert_error(post_json(api_client, {"image": "https://example.com/me.jpg"}), 400, "invalid")

    assert "URLs are not fetched" in error["details"]["image"][0]


def test_base64_of_something_that_is_not_an_image_is_refused_by_content(api_client):
    body = {"image": base64.b64encode(b"GIF89a but not really").decode()}

    assert_error(post_json(api_client, body), 400, "damaged_image")


def test_base64_of_text_is_an_unsupported_image(api_client):
    assert_error(post_json(api_client, {"image": base64.b64encode(b"hello, world").decode()}), 415, "unsupported_image")


@pytest.mark.parametrize("body", [{"image": ""}, {"photo": "abc"}, ["not", "an", "object"]])
def test_json_without_a_photo_is_invalid(api_client, body):
    assert_error(post_json(api_client, body), 400, "invalid")
    assert not Upload.objects.exists()


def test_json_over_the_size_limit_is_refused_before_it_is_decoded(api_client, settings, one_face_jpeg):
    settings.MAX_UPLOAD_BYTES = len(one_face_jpeg) - 1

    error = assert_error(
        post_json(api_client, {"image": base64.b64encode(one_face_jpeg).decode()}), 413, "file_too_large"
    )

    assert error["details"]["max_bytes"] == len(one_face_jpeg) - 1


def test_json_whose_photo_fits_is_taken_though_its_base64_is_longer_than_the_limit(api_client, settings, one_face_jpeg):
    settings.MAX_UPLOAD_BYTES = len(one_face_jpeg)  # the JSON body is 4/3 of that

    accepted(post_json(api_client, {"image": base64.b64encode(one_face_jpeg).decode()}))


def test_decode_base64_takes_both_alphabets_and_missing_padding():
    data = bytes(range(256))

    assert decode_base64(base64.b64encode(data).decode()) == data
    assert decode_base64(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data
    assert decode_base64("data:image/png;charset=utf-8;base64," + base64.b64encode(data).decode()) == data
