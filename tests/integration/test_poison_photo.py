"""A photo that kills its worker process every time is set aside after MAX_PROCESSING_ATTEMPTS claims,
instead of being redelivered for ever (acks_late + reject_on_worker_lost) and holding the ml queue.

The worker's settings (poison_worker_settings.py) make every photo kill the pool process that
decodes it, and allow 2 claims: the first two deliveries die, the third fails the upload.
"""

import re
import time

import pytest
import redis
from django.conf import settings

from apps.faces.services import TOO_MANY_ATTEMPTS
from devtools import devstack
from tests.support import app_env, make_client, photo_file, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_photo_that_kills_its_worker_every_time_is_set_aside(services_dir, one_face_jpeg, faces):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    env = app_env(DJANGO_SETTINGS_MODULE="tests.integration.poison_worker_settings")
    log_file = services_dir / "poison-worker.log"
    api = make_client("poison")[0]

    worker = devstack.start_worker(env, log_file=log_file)
    try:
        response = api.post("/api/v1/predictions", {"image": photo_file(one_face_jpeg)}, format="multipart")
        upload_id = response.json()["id"]
        upload = wait_until_finished(upload_id, timeout=120)
        # The upload is marked failed inside the third delivery, before that delivery is acknowledged:
        # stopping the worker in between would hand the message back to the queue.
        deadline = time.monotonic() + 30
        while " succeeded in " not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.stop()

    assert (upload.status, upload.failure_reason) == ("failed", TOO_MANY_ATTEMPTS)
    assert upload.processing_attempts == 3  # two deliveries died with their process, the third gave up
    assert upload.faces_found is None
    assert faces.count_documents({"upload_id": upload_id}) == 0
    log = log_file.read_text()
    assert log.count("exited with 'signal 9 (SIGKILL)'") == 2, log[-3000:]  # one per pool process killed
    deliveries = re.findall(r"faces_detect\[([0-9a-f-]+)\] received", log)
    assert len(deliveries) == 3 and len(set(deliveries)) == 1  # one task, delivered three times
    assert redis.Redis.from_url(settings.CELERY_BROKER_URL).llen("ml") == 0  # nothing left to redeliver
