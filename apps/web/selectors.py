"""Reads for the upload page: only photos sent from the page are reachable through it."""

from django.contrib.sessions.backends.base import SessionBase
from django.db.models import Count
from django.utils.crypto import salted_hmac

from apps.uploads.models import Upload

# The page lists this many of a browser's photos; older ones stay reachable by their address.
RECENT_UPLOADS_SHOWN = 20


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


def browser_of(session: SessionBase) -> str:
    """What names a browser on its uploads: a hash of its session key, keyed with SECRET_KEY, so that a
    database reader learns no session key to take over; "" for a browser without a session yet."""
    if session.session_key is None:
        return ""
    return salted_hmac("mairror.web.browser", session.session_key, algorithm="sha256").hexdigest()


def web_upload_is_from_session(*, upload: Upload, session: SessionBase) -> bool:
    """Whether this browser sent the photo (and so may delete it)."""
    browser = browser_of(session)
    return bool(browser) and upload.browser == browser


def web_uploads_of_session(*, session: SessionBase) -> list[Upload]:
    """The newest photos this browser sent (RECENT_UPLOADS_SHOWN of them), newest first, each with the
    number of faces analysed (``face_count``)."""
    browser = browser_of(session)
    if not browser:
        return []
    uploads = Upload.objects.filter(browser=browser, channel=Upload.Channel.WEB).order_by("-created_at")
    return list(uploads.annotate(face_count=Count("faces"))[:RECENT_UPLOADS_SHOWN])
