from dataclasses import asdict

from celery import shared_task

from apps.predictions.services import expired_data_delete, predictions_estimate, uploads_requeue_stuck
from apps.uploads.tasks import UploadTask


@shared_task(base=UploadTask)
def predict_ages(face_ids: list[str], upload_id: str) -> None:
    """Second pipeline step (queue ``ml``). ``face_ids`` comes first: a Celery chain prepends the previous result."""
    predictions_estimate(face_ids=face_ids, upload_id=upload_id)


@shared_task
def requeue_stuck_uploads() -> dict[str, int]:
    """The sweeper, every SWEEP_STUCK_UPLOADS_SECONDS from Celery beat (``CELERY_BEAT_SCHEDULE``)."""
    return uploads_requeue_stuck()


@shared_task
def delete_expired_uploads() -> dict[str, int]:
    """Daily (``CELERY_BEAT_SCHEDULE``): photos and faces past RETENTION_DAYS, unless kept for training.

    Returns the counts, ``failed`` included: uploads that could not be deleted (each logged with
    its error; the next run tries them again).
    """
    return asdict(expired_data_delete())
