from dataclasses import asdict

from celery import shared_task
from django.conf import settings

from apps.predictions import services
from apps.uploads.tasks import UploadTask


@shared_task(base=UploadTask, name="faces_estimate")
def faces_estimate(face_ids: list[str], upload_id: str) -> None:
    """Second pipeline step (queue ``ml``). ``face_ids`` comes first: a Celery chain prepends the previous result."""
    services.faces_estimate(face_ids=face_ids, upload_id=upload_id)


@shared_task(name="uploads_requeue_stuck")
def uploads_requeue_stuck() -> dict[str, int]:
    """The sweeper, every SWEEP_STUCK_UPLOADS_SECONDS from Celery beat (``CELERY_BEAT_SCHEDULE``)."""
    return services.uploads_requeue_stuck()


@shared_task(
    name="uploads_delete_expired",
    soft_time_limit=settings.RETENTION_SOFT_TIME_LIMIT,
    time_limit=settings.RETENTION_TIME_LIMIT,
)
def uploads_delete_expired() -> dict[str, int]:
    """Daily (``CELERY_BEAT_SCHEDULE``): photos and faces past RETENTION_DAYS, unless kept for training.

    Returns the counts, ``failed`` included: uploads that could not be deleted (each logged with
    its error; the next run tries them again).
    """
    return asdict(services.uploads_delete_expired())


# Acknowledged at once (acks_late off): a fine-tune outlasts the broker's visibility timeout, and must not be
# handed to a second worker while it runs, nor again after its worker died (training_run_request fails such a run).
@shared_task(
    name="model_candidate_train",
    acks_late=False,
    soft_time_limit=settings.MODEL_TRAINING_SOFT_TIME_LIMIT,
    time_limit=settings.MODEL_TRAINING_TIME_LIMIT,
)
def model_candidate_train(run_id: int) -> None:
    """``train_from_reviews`` (queue ``ml``): a candidate model from the reviewed faces, measured and registered."""
    services.model_candidate_train(run_id=run_id)
