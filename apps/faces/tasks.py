from celery import shared_task

from apps.faces.services import faces_detect
from apps.uploads.tasks import UploadTask


@shared_task(base=UploadTask)
def detect_faces(upload_id: str) -> list[str]:
    """First pipeline step (queue ``ml``); its result, the face document ids, is the next step's first argument."""
    return faces_detect(upload_id=upload_id)
