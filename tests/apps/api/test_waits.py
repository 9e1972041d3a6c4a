"""``?wait=`` in-process on the session's real Redis: woken by the upload's change event, not by polling.

Another thread changes the upload through the uploads services (which publish once committed), as a
worker would; the views' own checks (auth, 404, 400) are the DRF view's and are tested in test_apis.py.
"""

import time

import pytest

from apps.api import waits
from apps.uploads.models import Upload
from apps.uploads.services import upload_delete, upload_finish, upload_record_timings, upload_start_processing
from tests.support import change_later, make_client, photo_file

LIST_URL = "/api/v1/predictions"

pytestmark = pytest.mark.django_db(transaction=True)  # the other thread must see the upload


@pytest.fixture
def client():
    return make_client("waiter")[0]


@pytest.fixture
def pending(client, one_face_jpeg) -> Upload:
    response = client.post(LIST_URL, {"image": photo_file(one_face_jpeg)}, format="multipart")
    assert response.status_code == 202
    return Upload.objects.get(pk=response.json()["id"])


def finish(upload_id):
    upload_start_processing(upload_id=upload_id)
    upload_finish(upload=Upload.objects.get(pk=upload_id), timings={"estimation_ms": 1.0})


def test_a_waiting_client_gets_the_result_as_soon_as_the_upload_finishes(client, pending):
    changed = change_later(0.5, lambda: finish(pending.pk))
    started = time.monotonic()

    response = client.get(f"{LIST_URL}/{pending.pk}", {"wait": "10"})

    seconds = time.monotonic() - started
    changed.join()
    assert response.status_code == 200
    assert response.json()["status"] == "done"
    assert 0.4 < seconds < 1.5  # woken by the event, long before the wait was over


def test_the_steps_of_the_pipeline_cost_no_answer_only_its_end_does(client, pending, monkeypatch):
    """Claimed, then faces found, then done: the DRF view answers at the start and at the end only."""
    answers = []
    detail = waits._detail
    monkeypatch.setattr(waits, "_detail", lambda *args, **kwargs: answers.append(1) or detail(*args, **kwargs))
    upload = Upload.objects.get(pk=pending.pk)
    changed = change_later(
        0.2,
        lambda: upload_start_processing(upload_id=pending.pk),
        lambda: upload_record_timings(upload=upload, timings={"detection_ms": 1.0}, faces_found=1),
        lambda: upload_finish(upload=Upload.objects.get(pk=pending.pk), timings={"estimation_ms": 1.0}),
    )

    response = client.get(f"{LIST_URL}/{pending.pk}", {"wait": "10"})

    changed.join()
    assert response.json()["status"] == "done"
    assert len(answers) == 2


def test_a_step_that_does_not_finish_the_upload_keeps_the_client_waiting(client, pending):
    claimed = change_later(0.2, lambda: upload_start_processing(upload_id=pending.pk))
    started = time.monotonic()

    response = client.get(f"{LIST_URL}/{pending.pk}", {"wait": "1"})

    claimed.join()
    assert response.json()["status"] == "processing"
    assert time.monotonic() - started >= 0.95


def test_an_upload_deleted_while_a_client_waits_answers_not_found_at_once(client, pending):
    deleted = change_later(0.3, lambda: upload_delete(upload=Upload.objects.get(pk=pending.pk)))
    started = time.monotonic()

    response = client.get(f"{LIST_URL}/{pending.pk}", {"wait": "10"})

    deleted.join()
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert time.monotonic() - started < 2


def test_a_finished_upload_answers_without_waiting(client, pending):
    finish(pending.pk)
    started = time.monotonic()

    response = client.get(f"{LIST_URL}/{pending.pk}", {"wait": "10"})

    assert response.json()["status"] == "done"
    assert time.monotonic() - started < 1


def test_another_keys_upload_is_not_found_without_waiting(pending):
    started = time.monotonic()

    response = make_client("mallory")[0].get(f"{LIST_URL}/{pending.pk}", {"wait": "10"})

    assert response.status_code == 404
    assert time.monotonic() - started < 1


def test_delete_still_goes_through_the_detail_url(client, pending):
    assert client.delete(f"{LIST_URL}/{pending.pk}").status_code == 204
    assert not Upload.objects.filter(pk=pending.pk).exists()


def test_the_schema_still_documents_the_detail_url(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    operations = paths["/api/v1/predictions/{prediction_id}"]
    assert {"get", "delete"} <= set(operations)
    assert "wait" in [parameter["name"] for parameter in operations["get"]["parameters"]]


# --- POST ?wait: one call -------------------------------------------------------------------------


def test_a_post_that_waits_answers_200_with_the_result_once_the_upload_finishes(client, one_face_jpeg):
    finished = []

    def finish_the_new_upload():
        upload = Upload.objects.get()
        finish(upload.pk)
        finished.append(upload.pk)

    changed = change_later(0.5, finish_the_new_upload)
    started = time.monotonic()

    response = client.post(f"{LIST_URL}?wait=10", {"image": photo_file(one_face_jpeg)}, format="multipart")

    seconds = time.monotonic() - started
    changed.join()
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(finished[0])
    assert body["status"] == "done"
    assert {"faces", "timings", "image"} <= set(body)
    assert response["Location"].endswith(f"{LIST_URL}/{finished[0]}")
    assert 0.4 < seconds < 2.0  # woken by the event


def test_a_post_whose_upload_does_not_finish_in_time_answers_202_after_the_wait(client, one_face_jpeg):
    claimed = change_later(0.2, lambda: upload_start_processing(upload_id=Upload.objects.get().pk))
    started = time.monotonic()

    response = client.post(f"{LIST_URL}?wait=1", {"image": photo_file(one_face_jpeg)}, format="multipart")

    claimed.join()
    assert response.status_code == 202
    assert response.json()["status"] == "processing"  # as it is now, not as it was when taken
    assert set(response.json()) == {"id", "status", "url"}
    assert 0.95 <= time.monotonic() - started < 3


def test_a_post_without_wait_answers_at_once(client, one_face_jpeg):
    started = time.monotonic()

    response = client.post(LIST_URL, {"image": photo_file(one_face_jpeg)}, format="multipart")

    assert response.status_code == 202
    assert time.monotonic() - started < 2


def test_a_refused_photo_is_answered_at_once_whatever_the_wait(client):
    response = client.post(f"{LIST_URL}?wait=10", {"image": photo_file(b"text")}, format="multipart")

    assert response.status_code == 415


def test_a_batch_that_waits_answers_200_once_every_photo_is_finished(client, one_face_jpeg):
    def finish_all():
        for upload in Upload.objects.all():
            finish(upload.pk)

    changed = change_later(0.3, lambda: finish(Upload.objects.order_by("created_at").first().pk), finish_all)

    response = client.post(
        f"{LIST_URL}/batch?wait=10",
        {"images": [photo_file(one_face_jpeg), photo_file(b"text"), photo_file(one_face_jpeg)]},
        format="multipart",
    )

    changed.join()
    assert response.status_code == 200
    results = response.json()["results"]
    assert [result.get("status") for result in results] == ["done", None, "done"]
    assert results[1]["error"]["code"] == "unsupported_image"
    assert all(result["url"].endswith(result["id"]) for result in (results[0], results[2]))


def test_a_batch_whose_wait_runs_out_answers_202_with_what_finished(client, one_face_jpeg):
    changed = change_later(0.2, lambda: finish(Upload.objects.order_by("created_at").first().pk))

    response = client.post(
        f"{LIST_URL}/batch?wait=1",
        {"images": [photo_file(one_face_jpeg), photo_file(one_face_jpeg)]},
        format="multipart",
    )

    changed.join()
    assert response.status_code == 202
    assert [result["status"] for result in response.json()["results"]] == ["done", "pending"]
