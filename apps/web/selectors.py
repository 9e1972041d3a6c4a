"""Reads for the upload page: only photos sent from the page are reachable through it."""

from django.contrib.sessions.backends.base import SessionBase

from apps.uploads.models import Upload

# Session key of the ids of the photos this browser sent, newest first.
SESSION_UPLOADS = "web_upload_ids"


class Stage:
    """Where an upload is, in the words of the page's progress indicator."""

    QUEUED = "queued"
    FINDING_FACES = "finding_faces"
    PREDICTING = "predicting"
    DONE = "done"
    FAILED = "failed"


STAGE_MESSAGES = {
    Stage.QUEUED: "Waiting for a free worker…",
    Stage.FINDING_FACES: "Finding faces…",
    Stage.PREDICTING: "Estimating age and gender…",
    Stage.DONE: "Done.",
    Stage.FAILED: "The photo could not be analysed.",
}


def web_upload_get(*, upload_id) -> Upload | None:
    """A photo sent from the page, with its faces. Its random id is what makes its address private."""
    return Upload.objects.filter(pk=upload_id, channel=Upload.Channel.WEB).prefetch_related("faces").first()


def web_upload_stage(*, upload: Upload) -> str:
    if upload.status == Upload.Status.DONE:
        return Stage.DONE
    if upload.status == Upload.Status.FAILED:
        return Stage.FAILED
    if upload.status == Upload.Status.PENDING:
        return Stage.QUEUED
    # The detection step records its timing when it is done, before the estimation starts.
    return Stage.PREDICTING if "detection_ms" in upload.timings else Stage.FINDING_FACES


def web_upload_is_from_session(*, upload: Upload, session: SessionBase) -> bool:
    """Whether this browser sent the photo (and so may delete it)."""
    return str(upload.pk) in session.get(SESSION_UPLOADS, [])


def web_uploads_of_session(*, session: SessionBase) -> list[Upload]:
    """The photos this browser sent that still exist, newest first."""
    ids = session.get(SESSION_UPLOADS, [])
    return list(Upload.objects.filter(pk__in=ids, channel=Upload.Channel.WEB).order_by("-created_at"))
