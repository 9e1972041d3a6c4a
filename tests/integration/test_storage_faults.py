"""File storage failing when a photo arrives (a path that cannot be written, a full disk, S3 down or
without its bucket): the API and the page answer 503 in their error formats, and no row is left.

Storage fails before anything is queued, so these run in this process with the session's services.
"""

import resource
import signal
import socket
import time
from contextlib import contextmanager

from django.test import override_settings

from apps.predictions.services import STORAGE_UNAVAILABLE, PredictionUnavailable
from apps.uploads.models import Upload
from devtools import devstack
from tests.support import photo_file, stored_files

API_URL = "/api/v1/predictions"
S3_SETTINGS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_S3_REGION_NAME": "us-east-1",
    "AWS_DEFAULT_ACL": None,
    "AWS_S3_FILE_OVERWRITE": False,
    "STORAGES": {
        "default": {"BACKEND": "storages.backends.s3.S3Storage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    },
}


def assert_refused_cleanly(api_client, client, photo: bytes) -> None:
    """The API, the page's script and the page itself all answer 503 with the reason; no upload is recorded."""
    api = api_client.post(API_URL, {"image": photo_file(photo)}, format="multipart")
    page_json = client.post("/", {"image": photo_file(photo)}, HTTP_ACCEPT="application/json")
    page_html = client.post("/", {"image": photo_file(photo)})

    assert api.status_code == 503
    assert api["Retry-After"] == str(PredictionUnavailable.retry_after)
    assert api.json() == {"error": {"code": "service_unavailable", "message": STORAGE_UNAVAILABLE, "details": {}}}
    assert (page_json.status_code, page_json.json()) == (503, {"error": STORAGE_UNAVAILABLE})
    assert page_json["Retry-After"] == str(PredictionUnavailable.retry_after)
    assert page_html.status_code == 503
    assert STORAGE_UNAVAILABLE in page_html.content.decode()
    assert not Upload.objects.exists()


def test_local_storage_that_cannot_be_written(api_client, client, settings, tmp_path, one_face_jpeg):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    # Under a regular file no directory can be made, whoever we run as (root ignores permissions).
    settings.MEDIA_ROOT = str(blocker / "media")

    assert_refused_cleanly(api_client, client, one_face_jpeg)
    assert blocker.read_bytes() == b""


@contextmanager
def disk_fills_after(nbytes: int):
    """Writes of this process past ``nbytes`` into a file fail (EFBIG), as they would on a full disk."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a killed process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_local_storage_that_fills_up_midway_gets_503_and_no_row(api_client, settings, tmp_path, one_face_jpeg):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    assert len(one_face_jpeg) > 64 * 1024

    with disk_fills_after(16 * 1024):
        response = api_client.post(API_URL, {"image": photo_file(one_face_jpeg)}, format="multipart")

    assert response.status_code == 503
    assert response.json()["error"]["message"] == STORAGE_UNAVAILABLE
    assert not Upload.objects.exists()


def test_local_storage_that_fills_up_midway_leaves_no_partial_file(api_client, settings, tmp_path, one_face_jpeg):
    settings.MEDIA_ROOT = str(tmp_path / "media")

    with disk_fills_after(16 * 1024):
        api_client.post(API_URL, {"image": photo_file(one_face_jpeg)}, format="multipart")

    assert stored_files(tmp_path / "media") == set()


def test_s3_that_cannot_be_reached(api_client, client, one_face_jpeg):
    nobody_listens = f"http://127.0.0.1:{devstack.free_port()}"
    with override_settings(AWS_STORAGE_BUCKET_NAME="photos", AWS_S3_ENDPOINT_URL=nobody_listens, **S3_SETTINGS):
        assert_refused_cleanly(api_client, client, one_face_jpeg)


def test_s3_without_its_bucket(api_client, client, one_face_jpeg):
    s3 = devstack.start_s3()
    try:
        with override_settings(AWS_STORAGE_BUCKET_NAME="never-created", AWS_S3_ENDPOINT_URL=s3.url, **S3_SETTINGS):
            assert_refused_cleanly(api_client, client, one_face_jpeg)
    finally:
        s3.stop()


def test_s3_that_stops_answering_gets_a_503_within_the_bound(api_client, one_face_jpeg):
    """Connections are accepted (the kernel's backlog) but nothing ever answers: botocore's
    timeouts (AWS_S3_CLIENT_CONFIG) end the store, and the clean-up delete, in seconds."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with override_settings(AWS_STORAGE_BUCKET_NAME="photos", AWS_S3_ENDPOINT_URL=endpoint, **S3_SETTINGS):
            started = time.monotonic()
            response = api_client.post(API_URL, {"image": photo_file(one_face_jpeg)}, format="multipart")
            seconds = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["error"]["message"] == STORAGE_UNAVAILABLE
    assert seconds < 30  # gunicorn's default worker timeout; botocore's defaults took minutes
    assert not Upload.objects.exists()
