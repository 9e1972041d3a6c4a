"""The webhook Telegram posts updates to: check the secret, record the update, answer at once."""

import hmac
import json

from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.telegram.serializers import update_errors
from apps.telegram.services import UpdateNotQueued, telegram_update_receive

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


@csrf_exempt
@require_POST
def telegram_webhook(request):
    """200 within milliseconds, redeliveries included (Telegram retries anything else); the work is a task's.

    Without the configured secret (compared in constant time) nothing is read: 403. What is not
    shaped like an update (``apps.telegram.serializers``) is not stored: 400, saying why.
    """
    secret = settings.TELEGRAM_WEBHOOK_SECRET.encode()
    if not secret or not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), secret):
        return HttpResponseForbidden()
    try:
        update = json.loads(request.body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return HttpResponseBadRequest("The body is not JSON.", content_type="text/plain")
    if (problem := update_errors(update)) is not None:
        return HttpResponseBadRequest(f"Not a Telegram update: {problem}", content_type="text/plain")
    try:
        telegram_update_receive(update=update)
    except UpdateNotQueued:
        return HttpResponse(status=503)  # Telegram delivers it again later
    return HttpResponse()
