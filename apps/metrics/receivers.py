"""What records the series of ``apps.metrics.series``: receivers of other apps' signals (connected in
MetricsConfig.ready), so that none of them knows about metrics.

A photo is counted as pending when its row is committed, and once more when it finishes (the
``upload_finished`` signal, sent once per upload): then its status, its failure's reason code, its
stages' timings and, per worker, the model version its faces carry. Redeliveries and retries finish
nothing, so nothing is counted twice. Each of these reads happens after the commit and never raises
into the pipeline step (``robust``): a metric is not worth failing a photo for.
"""

from __future__ import annotations

import logging
from functools import partial

from celery import current_task
from django.db import transaction
from django.db.models import DurationField, ExpressionWrapper, F

from apps.metrics import exposition
from apps.metrics.series import (
    FAILURES,
    PHOTO_SECONDS,
    PHOTOS,
    RATE_LIMIT_REFUSALS,
    STAGE_SECONDS,
    STAGE_TIMINGS,
    WORKER_MODEL,
    failure_code,
)
from apps.predictions.models import FaceEstimate
from apps.uploads.models import Upload

logger = logging.getLogger(__name__)

# The version this process last reported per worker, so that a new one (a promotion) zeroes the old.
_reported_versions: dict[str, str] = {}


def photo_accepted(sender, instance: Upload, created: bool, **kwargs) -> None:
    """``post_save`` of an Upload: a new photo counts as pending once its row is committed."""
    if created:
        transaction.on_commit(partial(PHOTOS.labels(channel=instance.channel, status="pending").inc), robust=True)


def photo_finished(sender, upload_id, **kwargs) -> None:
    """``upload_finished``: record the photo once its final status is committed."""
    transaction.on_commit(partial(_photo_record, upload_id=upload_id), robust=True)


def _photo_record(*, upload_id) -> None:
    upload = (
        Upload.objects.filter(pk=upload_id)
        .annotate(duration=ExpressionWrapper(F("finished_at") - F("created_at"), output_field=DurationField()))
        .values("channel", "status", "failure_reason", "timings", "duration")
        .first()
    )
    if upload is None:  # deleted meanwhile
        return
    PHOTOS.labels(channel=upload["channel"], status=upload["status"]).inc()
    for stage, key in STAGE_TIMINGS.items():
        if key in upload["timings"]:
            STAGE_SECONDS.labels(stage=stage).observe(upload["timings"][key] / 1000)
    if upload["status"] == Upload.Status.FAILED:
        FAILURES.labels(reason=failure_code(upload["failure_reason"])).inc()
        return
    PHOTO_SECONDS.labels(channel=upload["channel"]).observe(upload["duration"].total_seconds())
    version = FaceEstimate.objects.filter(upload_id=upload_id).values_list("model_version", flat=True).first()
    if version is not None and current_task:
        _model_version_report(worker=current_task.request.hostname, version=version)


def _model_version_report(*, worker: str, version: str) -> None:
    previous = _reported_versions.get(worker)
    if previous == version:
        return
    if previous is not None:
        WORKER_MODEL.labels(worker=worker, version=previous).set(0)
    WORKER_MODEL.labels(worker=worker, version=version).set(1)
    _reported_versions[worker] = version


def upload_refused(sender, scope: str, **kwargs) -> None:
    """``apps.ratelimits.rate_limited``: one more request refused by that limit."""
    RATE_LIMIT_REFUSALS.labels(scope=scope).inc()


def worker_started(sender, **kwargs) -> None:
    """``worker_init`` (a Celery worker's main process): serve this worker's metrics, if it is asked to."""
    exposition.worker_metrics_start()
