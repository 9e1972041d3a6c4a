"""A hung detection frees its worker: past its soft time limit the task is interrupted, past its hard one
its pool process is killed and replaced; either way the upload fails at once with the reason, and the
worker goes on with the next upload.

The settings of the web server and the worker (hung_detection_settings.py) limit detection to 2 s and
5 s and hang it on two photo sizes, one of which ignores the soft limit.
"""

import httpx
import numpy as np
import pytest
import redis
from django.conf import settings
from rest_framework_api_key.models import APIKey

from apps.uploads.models import Upload
from apps.uploads.tasks import TIMED_OUT
from devtools import devstack
from tests.integration import hung_detection_settings
from tests.support import app_env, encode, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)


def photo_of(shape: tuple[int, int]) -> bytes:
    return encode(np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8))


def test_a_hung_detection_fails_its_upload_within_the_limit_and_the_worker_takes_the_next(
    services_dir, no_face_jpeg, faces
):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = app_env(DJANGO_SETTINGS_MODULE="tests.integration.hung_detection_settings", ALLOWED_HOSTS="127.0.0.1")
    log_file = services_dir / "hung-worker.log"
    _, key = APIKey.objects.create_key(name="hung")
    photos = [photo_of(hung_detection_settings.HANGS), photo_of(hung_detection_settings.STUCK), no_face_jpeg]

    web = devstack.start_web(env, devstack.free_port(), services_dir / "hung-web.log")
    worker = devstack.start_worker(env, log_file=log_file)  # one pool process: the uploads run one after another
    try:
        upload_ids = [
            httpx.post(
                f"{web.url}/api/v1/predictions",
                headers={"Authorization": f"Api-Key {key}"},
                files={"image": ("photo.jpg", photo)},
                timeout=30,
            ).json()["id"]
            for photo in photos
        ]
        hung, stuck, next_one = (wait_until_finished(upload_id, timeout=120) for upload_id in upload_ids)
        assert worker.process.poll() is None
    finally:
        worker.stop()
        web.stop()

    soft, hard = hung_detection_settings.DETECTION_SOFT_TIME_LIMIT, hung_detection_settings.DETECTION_TIME_LIMIT
    for upload, least, most in ((hung, soft, hard), (stuck, hard, hard + 5)):
        assert (upload.status, upload.failure_reason) == (Upload.Status.FAILED, TIMED_OUT)
        assert least <= (upload.finished_at - upload.started_at).total_seconds() < most
        assert upload.processing_attempts == 1  # not redelivered: the time limit is the end of it
    assert (next_one.status, next_one.faces_found) == (Upload.Status.DONE, 0)
    log = log_file.read_text()
    assert f"Soft time limit ({soft}s) exceeded for faces_detect" in log, log[-3000:]
    assert f"Hard time limit ({hard}s) exceeded for faces_detect" in log, log[-3000:]
    assert redis.Redis.from_url(settings.CELERY_BROKER_URL).llen("ml") == 0  # nothing left to redeliver
