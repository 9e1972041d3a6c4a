"""Writes for the upload page: a photo sent from a browser, remembered by that browser's session."""

from django.contrib.sessions.backends.base import SessionBase
from django.core.files import File

from apps.predictions.services import prediction_request, upload_erase
from apps.uploads.models import Upload
from apps.web.selectors import SESSION_UPLOADS

# The page lists this many of a browser's photos; older ones stay reachable by their address.
SESSION_UPLOADS_KEPT = 20


def web_upload_create(*, image: File, session: SessionBase) -> Upload:
    """Accept a photo from the page and queue its analysis; this browser may delete it later.

    Raises ``apps.uploads.images.UploadRejected`` for files we do not accept.
    """
    upload = prediction_request(image=image, channel=Upload.Channel.WEB)
    session[SESSION_UPLOADS] = [str(upload.pk), *session.get(SESSION_UPLOADS, [])][:SESSION_UPLOADS_KEPT]
    return upload


def web_upload_delete(*, upload: Upload, session: SessionBase) -> None:
    """Delete the photo and everything made from it, and forget it in this browser."""
    upload_id = str(upload.pk)  # deleting sets the instance's pk to None
    upload_erase(upload=upload)
    session[SESSION_UPLOADS] = [pk for pk in session.get(SESSION_UPLOADS, []) if pk != upload_id]
