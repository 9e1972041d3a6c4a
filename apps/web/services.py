"""Writes for the upload page: a photo sent from a browser, which that browser may delete."""

from django.contrib.sessions.backends.base import SessionBase
from django.core.files import File

from apps.predictions.services import prediction_request, upload_erase
from apps.uploads.models import Upload
from apps.web.selectors import browser_of


def web_upload_create(*, image: File, session: SessionBase) -> Upload:
    """Accept a photo from the page and queue its analysis; this browser may delete it later.

    The browser is written on the upload itself (``browser_of``), not added to a list in the session:
    photos sent at once from one browser would each read the list, add one and write it back, and
    all but the last would be forgotten. Raises ``apps.uploads.images.UploadRejected`` for files we do
    not accept.
    """
    if session.session_key is None:
        session.create()  # a first photo: the browser gets its session (and cookie) now
    return prediction_request(image=image, channel=Upload.Channel.WEB, browser=browser_of(session))


def web_upload_delete(*, upload: Upload) -> None:
    """Delete the photo and everything made from it (the caller checked it is this browser's)."""
    upload_erase(upload=upload)
