"""The JSON API in-process, without a worker: uploads stay pending unless a test sets the results itself."""

import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.faces.selectors import face_crop_png
from apps.faces.services import face_documents_store
from apps.predictions.models import FaceEstimate
from apps.uploads.models import Upload
from tests.support import make_face, photo_file, stored_files

LIST_URL = "/api/v1/predictions"


def detail_url(upload_id) -> str:
    return f"{LIST_URL}/{upload_id}"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def post_photo(client, data: bytes):
    return client.post(LIST_URL, {"image": photo_file(data)}, format="multipart")


@pytest.fixture
def created(api_client, one_face_jpeg) -> Upload:
    response = post_photo(api_client, one_face_jpeg)
    assert response.status_code == 202
    return Upload.objects.get(pk=response.json()["id"])


def add_face_result(upload: Upload) -> FaceEstimate:
    """What the pipeline leaves behind for one face: a MongoDB document and a SQL row."""
    [face_id] = face_documents_store(upload_id=str(upload.pk), faces=[make_face(0)], model_version="ag-test")
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DONE, timings={"total_ms": 1234.5})
    return FaceEstimate.objects.create(
        upload=upload,
        face_index=0,
        mongo_face_id=face_id,
        box_x=182,
        box_y=64,
        box_width=83,
        box_height=107,
        landmarks={"left_eye": [205.1, 105.2], "right_eye": [245.3, 104.9]},
        detection_confidence=0.999,
        age_value=41.2,
        age_low=33.0,
        age_high=50.0,
        age_level=0.8,
        gender_label="female",
        gender_probability=0.91,
        model_version="ag-test",
    )


# --- creating ---------------------------------------------------------------------------------


def test_post_accepts_a_photo_and_returns_where_to_poll(api_client, client_and_key, one_face_jpeg):
    response = post_photo(api_client, one_face_jpeg)

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "status", "url"}
    assert body["status"] == "pending"
    assert body["url"] == f"http://testserver{detail_url(body['id'])}"
    assert response["Location"] == body["url"]
    upload = Upload.objects.get(pk=body["id"])
    assert (upload.owner, upload.channel, upload.width, upload.height) == (client_and_key[1], "api", 512, 512)


def test_post_rejects_a_file_that_is_not_an_image(api_client):
    before = stored_files()

    response = api_client.post(LIST_URL, {"image": photo_file(b"%PDF-1.4 not a photo", "cv.jpg")})

    error = assert_error(response, 415, "unsupported_image")
    assert "JPEG" in error["details"]["accepted_formats"]
    assert not Upload.objects.exists()
    assert stored_files() == before


@pytest.mark.parametrize(
    "max_bytes",
    [1000, 70_000],  # refused from the Content-Length before the body is read; refused after reading it
)
def test_post_rejects_a_file_over_the_size_limit(api_client, settings, one_face_jpeg, max_bytes):
    settings.MAX_UPLOAD_BYTES = max_bytes
    assert len(one_face_jpeg) > max_bytes
    before = stored_files()

    error = assert_error(post_photo(api_client, one_face_jpeg), 413, "file_too_large")

    assert error["details"]["max_bytes"] == max_bytes
    assert not Upload.objects.exists()
    assert stored_files() == before


def test_post_rejects_an_image_over_the_pixel_limit(api_client, settings, one_face_jpeg):
    settings.MAX_IMAGE_PIXELS = 512 * 511

    error = assert_error(post_photo(api_client, one_face_jpeg), 413, "image_too_large")

    assert error["details"]["pixels"] == 512 * 512


def test_post_without_an_image_is_invalid(api_client):
    error = assert_error(api_client.post(LIST_URL, {"photo": "x"}), 400, "invalid")

    assert "image" in error["details"]


def test_post_of_a_body_type_it_does_not_take_says_which_it_takes(api_client):
    error = assert_error(api_client.post(LIST_URL, "x", content_type="text/plain"), 415, "unsupported_media_type")

    accepted = ["multipart/form-data", "application/json", "image/*", "application/octet-stream"]
    assert error["details"]["accepted"] == accepted
    assert "image/*" in error["message"]


# --- authentication ---------------------------------------------------------------------------


def test_requests_without_a_key_are_unauthenticated(db, one_face_jpeg):
    response = post_photo(APIClient(), one_face_jpeg)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"
    assert not Upload.objects.exists()


@pytest.mark.parametrize("header", ["Api-Key nope.nothing", "Api-Key ", "Bearer abc"])
def test_requests_with_a_bad_key_are_unauthenticated(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    assert client.get(LIST_URL).status_code == 401


def test_revoked_keys_are_refused(api_client, client_and_key):
    client_and_key[1].revoked = True
    client_and_key[1].save()

    assert_error(api_client.get(LIST_URL), 401, "authentication_failed")


# --- reading ----------------------------------------------------------------------------------


def test_get_pending_prediction(api_client, created):
    response = api_client.get(detail_url(created.pk))

    assert response.status_code == 200
    assert response.json() == {
        "id": str(created.pk),
        "status": "pending",
        "failure_reason": "",
        "created_at": response.json()["created_at"],
        "image": {"width": 512, "height": 512},
        "faces": [],
        "faces_found": None,
        "faces_notice": "",
        "timings": {},
    }


def test_get_done_prediction_has_faces_with_boxes_and_confidence(api_client, created):
    face = add_face_result(created)

    body = api_client.get(detail_url(created.pk)).json()

    assert body["status"] == "done"
    assert body["timings"] == {"total_ms": 1234.5}
    assert body["faces"] == [
        {
            "id": face.mongo_face_id,
            "index": 1,
            "box": {"x": 182, "y": 64, "width": 83, "height": 107},
            "box_relative": {"x": 0.3555, "y": 0.125, "width": 0.1621, "height": 0.209},  # of 512 x 512
            "landmarks": {"left_eye": [205.1, 105.2], "right_eye": [245.3, 104.9]},
            "detection_confidence": 0.999,
            "age": {"value": 41.2, "low": 33.0, "high": 50.0, "level": 0.8},
            "gender": {"label": "female", "probability": 0.91},
            "pose": None,  # made before poses were estimated
            "quality": {"sharpness": None, "brightness": None, "face_px": 83},
            "model_version": "ag-test",
            "crop_url": f"http://testserver{detail_url(created.pk)}/faces/1/crop",
        }
    ]


def test_a_faces_crop_is_the_png_the_models_saw_for_its_owner_only(api_client, created, other_client_and_key):
    face = add_face_result(created)
    crop_url = api_client.get(detail_url(created.pk)).json()["faces"][0]["crop_url"]

    response = api_client.get(crop_url, HTTP_ACCEPT="image/png")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content == face_crop_png(upload_id=created.pk, face_index=face.face_index)
    assert response["Cache-Control"] == "private, max-age=3600"
    assert_error(other_client_and_key[0].get(crop_url), 404, "not_found")
    assert_error(APIClient().get(crop_url), 401, "not_authenticated")


@pytest.mark.parametrize("index", [0, 2])
def test_a_face_the_prediction_does_not_have_is_not_found_in_json_whatever_the_accept(api_client, created, index):
    add_face_result(created)

    error = assert_error(
        api_client.get(f"{detail_url(created.pk)}/faces/{index}/crop", HTTP_ACCEPT="image/png"), 404, "not_found"
    )

    assert "numbered from 1" in error["message"]


def test_get_waits_at_most_as_long_as_asked(api_client, created):
    response = api_client.get(detail_url(created.pk), {"wait": "0.3"})

    assert response.status_code == 200
    assert response.json()["status"] == "pending"


@pytest.mark.parametrize("wait", ["soon", "-1"])
def test_get_rejects_a_bad_wait(api_client, created, wait):
    error = assert_error(api_client.get(detail_url(created.pk), {"wait": wait}), 400, "invalid")

    assert "wait" in error["details"]


def test_get_unknown_id_is_not_found(api_client):
    assert_error(api_client.get(detail_url(uuid.uuid4())), 404, "not_found")


def test_list_is_paginated_newest_first(api_client, one_face_jpeg):
    ids = [post_photo(api_client, one_face_jpeg).json()["id"] for _ in range(3)]

    body = api_client.get(LIST_URL).json()

    assert (body["count"], body["next"], body["previous"]) == (3, None, None)
    assert [item["id"] for item in body["results"]] == ids[::-1]
    assert set(body["results"][0]) == {
        "id",
        "status",
        "failure_reason",
        "created_at",
        "image",
        "faces",
        "faces_found",
        "faces_notice",
        "timings",
    }


# --- isolation between clients ----------------------------------------------------------------


def test_a_client_sees_only_what_its_key_created(created, other_client_and_key, faces):
    add_face_result(created)
    other, _ = other_client_and_key

    assert_error(other.get(detail_url(created.pk)), 404, "not_found")
    assert other.get(LIST_URL).json()["count"] == 0
    assert_error(other.delete(detail_url(created.pk)), 404, "not_found")

    assert Upload.objects.filter(pk=created.pk).exists()
    assert created.faces.count() == 1
    assert faces.count_documents({"upload_id": str(created.pk)}) == 1


# --- deleting ---------------------------------------------------------------------------------


def test_delete_removes_photo_faces_and_rows(api_client, created, faces):
    add_face_result(created)
    path = created.image.path

    response = api_client.delete(detail_url(created.pk))

    assert response.status_code == 204
    assert not Upload.objects.filter(pk=created.pk).exists()
    assert not FaceEstimate.objects.exists()
    assert faces.count_documents({"upload_id": str(created.pk)}) == 0
    assert path not in {str(file) for file in stored_files()}
    assert_error(api_client.get(detail_url(created.pk)), 404, "not_found")


# --- the rest of the surface ------------------------------------------------------------------


def test_unknown_api_urls_get_the_error_format(api_client):
    assert_error(api_client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(api_client.get(f"{LIST_URL}/not-a-uuid"), 404, "not_found")


def test_method_not_allowed_gets_the_error_format(api_client, created):
    assert_error(api_client.put(detail_url(created.pk)), 405, "method_not_allowed")


def test_healthz_needs_no_key_and_no_database(client):
    response = client.get("/healthz")  # without the db fixture, any query would raise

    assert response.status_code == 200
    assert response.json()["status"] == "ok"  # the rest: tests/mairror/test_health.py


def test_openapi_schema_declares_the_api_key_scheme(db, client):
    response = client.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schema["components"]["securitySchemes"]["ApiKeyAuth"]["description"],
    }
    assert set(schema["components"]["securitySchemes"]) == {"ApiKeyAuth", "BearerAuth", "XApiKeyAuth"}
    paths = {"/api/v1/predictions", "/api/v1/predictions/batch", "/api/v1/predictions/{prediction_id}"}
    assert paths <= set(schema["paths"])
    create = schema["paths"]["/api/v1/predictions"]["post"]
    assert create["security"] == [{"ApiKeyAuth": []}, {"BearerAuth": []}, {"XApiKeyAuth": []}]  # any one
    assert {"200", "202", "401", "413", "415"} <= set(create["responses"])
    bodies = create["requestBody"]["content"]
    assert set(bodies) == {"multipart/form-data", "application/json", "image/*", "application/octet-stream"}
    assert bodies["image/*"]["schema"] == {"type": "string", "format": "binary"}
    assert "wait" in {parameter["name"] for parameter in create["parameters"]}
    batch = schema["paths"]["/api/v1/predictions/batch"]["post"]
    assert set(batch["requestBody"]["content"]) == {"multipart/form-data"}
    assert {"200", "202", "400", "429"} <= set(batch["responses"])


def test_docs_page_is_served_without_a_cdn(db, client):
    response = client.get(reverse("docs"))

    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"cdn.jsdelivr.net" not in response.content
