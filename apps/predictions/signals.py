"""What a Celery pool process of an ml worker does about the model version it serves (connected in mairror.celery).

It serves the active ``ModelVersion``: it loads that one when it starts, before ``apps.faces.signals`` warms
the pipeline and counts the process as ready, and before a pipeline task it asks again, at most every
MODEL_VERSION_CHECK_SECONDS (one SQL query). A promotion is loaded and warmed there, between two tasks,
while the old version keeps serving until then; if it fails, the old one serves on.
"""

from __future__ import annotations

import math
import time

from celery import current_app
from django.conf import settings

PIPELINE_TASKS = ("faces_detect", "faces_estimate")  # the tasks that use face_pipeline()

_checked_at = -math.inf


def ml_process_serve_active(**kwargs) -> None:
    """worker_process_init: load the active version, if this worker consumes the queue detection is routed to."""
    if settings.CELERY_TASK_ROUTES["faces_detect"]["queue"] in current_app.amqp.queues.consume_from:
        _serve_active()


def ml_task_serve_active(sender=None, **kwargs) -> None:
    """task_prerun: switch to the active version before a pipeline task, if it changed since the last look."""
    if (
        getattr(sender, "name", None) in PIPELINE_TASKS
        and time.monotonic() - _checked_at >= settings.MODEL_VERSION_CHECK_SECONDS
    ):
        _serve_active()


def _serve_active() -> None:
    global _checked_at
    from apps.predictions.services import model_version_serve_active  # models load after this module

    _checked_at = time.monotonic()
    model_version_serve_active()
