"""``POST /api/v1/predictions/batch`` in-process, without a worker: each photo an upload of its own."""

import pytest
from rest_framework.test import APIClient

from apps.uploads.models import Upload
from tests.support import photo_file, stored_files

BATCH_URL = "/api/v1/predictions/batch"


def post_batch(client, *files, query: str = ""):
    return client.post(BATCH_URL + query, {"images": list(files)}, format="multipart")


def test_a_batch_answers_one_entry_per_photo_in_order_and_a_bad_photo_fails_alone(api_client, one_face_jpeg):
    before = stored_files()
    response = post_batch(
        api_client,
        photo_file(one_face_jpeg, "first.jpg"),
        photo_file(b"<html>not a photo</html>", "page.jpg"),
        photo_file(b"", "empty.jpg"),
        photo_file(one_face_jpeg, "last.jpg"),
    )

    assert response.status_code == 202  # two photos are still pending
    results = response.json()["results"]
    assert len(results) == 4
    assert [result.get("status") for result in results] == ["pending", None, None, "pending"]
    assert results[1]["error"]["code"] == "unsupported_image"
    assert results[1]["error"]["message"] == "The file is not an image in a supported format."
    assert set(results[1]) == {"error"}
    assert results[2]["error"]["code"] == "empty_file"
    uploads = Upload.objects.order_by("created_at")
    assert [str(upload.pk) for upload in uploads] == [results[0]["id"], results[3]["id"]]
    assert results[0]["url"].endswith(f"/api/v1/predictions/{results[0]['id']}")
    assert results[0]["faces"] == [] and results[0]["image"] == {"width": 512, "height": 512}
    assert len(stored_files() - before) == 2  # the refused photos left no file
    # each one is an ordinary prediction of the key's
    assert api_client.get(f"/api/v1/predictions/{results[3]['id']}").json()["status"] == "pending"


def test_a_batch_of_refused_photos_only_is_finished_at_once(api_client):
    response = post_batch(api_client, photo_file(b"nope", "a.jpg"))

    assert response.status_code == 200
    assert response.json()["results"][0]["error"]["code"] == "unsupported_image"


@pytest.mark.parametrize("count", [17, 20])
def test_a_batch_over_the_photo_limit_is_refused_whole(api_client, one_face_jpeg, count):
    response = post_batch(api_client, *[photo_file(one_face_jpeg) for _ in range(count)])

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "too_many_photos"
    assert error["details"] == {"max_photos": 16, "photos": count}
    assert not Upload.objects.exists()


def test_the_photo_limit_is_a_setting(api_client, settings, one_face_jpeg):
    settings.MAX_BATCH_PHOTOS = 2

    assert post_batch(api_client, *[photo_file(one_face_jpeg) for _ in range(2)]).status_code == 202
    assert post_batch(api_client, *[photo_file(one_face_jpeg) for _ in range(3)]).status_code == 400


def test_a_batch_without_photos_is_invalid_and_names_the_field(api_client, one_face_jpeg):
    response = api_client.post(BATCH_URL, {"image": photo_file(one_face_jpeg)}, format="multipart")

    assert response.status_code == 400
    [message] = response.json()["error"]["details"]["images"]
    assert "repeat the field images" in message and "not image" in message


def test_images_that_are_not_files_are_invalid(api_client):
    response = api_client.post(BATCH_URL, {"images": ["abc", "def"]}, format="multipart")

    assert response.status_code == 400
    assert "must be a file" in response.json()["error"]["details"]["images"][0]


def test_a_batch_must_be_multipart(api_client):
    response = api_client.post(BATCH_URL, {"images": []}, format="json")

    assert response.status_code == 415
    assert response.json()["error"]["details"]["accepted"] == ["multipart/form-data"]


def test_a_batch_body_over_its_size_limit_is_refused_unread(api_client, settings, one_face_jpeg):
    settings.MAX_BATCH_BYTES = len(one_face_jpeg)

    response = post_batch(api_client, *[photo_file(one_face_jpeg) for _ in range(3)])

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert not Upload.objects.exists()


def test_a_batch_needs_a_key(db, one_face_jpeg):
    assert post_batch(APIClient(), photo_file(one_face_jpeg)).status_code == 401


def test_a_bad_wait_is_refused_before_any_photo_is_taken(api_client, one_face_jpeg):
    assert post_batch(api_client, photo_file(one_face_jpeg), query="?wait=soon").status_code == 400
    assert not Upload.objects.exists()
