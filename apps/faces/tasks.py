from celery import shared_task
from django.conf import settings

from apps.faces import services
from apps.uploads.tasks import UploadTask


# Named after its service, not its module: the name is what the broker, CELERY_TASK_ROUTES and the logs use.
# Shorter limits than other tasks': a hung detection holds every upload queued behind it on ``ml``.
@shared_task(
    base=UploadTask,
    name="faces_detect",
    soft_time_limit=settings.DETECTION_SOFT_TIME_LIMIT,
    time_limit=settings.DETECTION_TIME_LIMIT,
)
def faces_detect(upload_id: str) -> list[str]:
    """First pipeline step (queue ``ml``); its result, the face document ids, is the next step's first argument."""
    return services.faces_detect(upload_id=upload_id)
