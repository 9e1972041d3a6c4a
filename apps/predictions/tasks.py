from celery import shared_task

from apps.predictions.services import predictions_estimate
from apps.uploads.tasks import UploadTask


@shared_task(base=UploadTask)
def predict_ages(face_ids: list[str], upload_id: str) -> None:
    """Second pipeline step (queue ``ml``). ``face_ids`` comes first: a Celery chain prepends the previous result."""
    predictions_estimate(face_ids=face_ids, upload_id=upload_id)
