"""A logging filter that cuts secrets out of log records, wherever a careless message puts them.

Nothing here is meant to log a secret in the first place (see apps.telegram.bot_api); this is the
net under that: the bot token, the webhook secret and the metrics token from the settings, Bot API
URLs, and anything shaped like an API key (``<8 characters>.<32 characters>``) or an ``Api-Key`` header.

The filter sits on handlers, where it sees every record that reaches them, whichever logger made
it (a logger's own filters never see its children's records): the console handler of LOGGING,
and the handlers the Celery worker and beat put on the root logger in its place
(``redact_handlers``, connected in mairror.celery).
"""

import logging
import re

from django.conf import settings

REDACTED = "<redacted>"
SECRET_PATTERNS = [
    re.compile(r"(?<=/bot)[0-9]+:[A-Za-z0-9_-]+"),  # a Bot API URL's token, whoever's bot it is
    re.compile(r"(?<=Api-Key )\S+", re.IGNORECASE),
    re.compile(r"\b[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}\b"),  # djangorestframework-api-key's keys
]
PLAIN_ARGUMENTS = (int, float, bool, type(None))


class RedactSecrets(logging.Filter):
    """Redacts the record in place and always lets it through; never raises, whatever the record holds.

    A record whose arguments do not fit its message (``logger.warning("%d", "x")``) is left for the
    handler to report as logging does ("--- Logging error ---", which prints the message and the
    arguments): its message and arguments are redacted one by one instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            self._redact_parts(record)
        else:
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        try:
            if record.exc_info and not record.exc_text:
                # Formatted here, once, so the traceback's text can be redacted too.
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        except Exception:  # noqa: S110 - a log filter must never raise into the code that logs
            pass
        return True

    @staticmethod
    def _redact_parts(record: logging.LogRecord) -> None:
        try:
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
            if isinstance(record.args, dict):
                record.args = {key: _redact_argument(value) for key, value in record.args.items()}
            elif isinstance(record.args, tuple):
                record.args = tuple(_redact_argument(value) for value in record.args)
        except Exception:  # noqa: S110 - as above
            pass


def _redact_argument(value):
    """A string argument redacted; another whose repr holds a secret becomes its redacted repr."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, PLAIN_ARGUMENTS):
        return value
    try:
        text = repr(value)
    except Exception:
        return value
    redacted = redact(text)
    return value if redacted == text else redacted


def redact(text: str) -> str:
    for secret in (settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_WEBHOOK_SECRET, settings.METRICS_TOKEN):
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class QueryStringsRedacted(logging.Filter):
    """On the web server's access log (uvicorn's ``uvicorn.access``: ``client - "METHOD path HTTP/v" status``):
    the path keeps its ``?`` and loses the query string, where a client may have put an API key or the
    webhook secret (``?api_key=...``). Other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?" + REDACTED, *args[3:])
        return True


def redact_handlers(logger: logging.Logger, **_) -> None:
    """Put RedactSecrets on each of ``logger``'s handlers that lacks it (a receiver of Celery's
    ``after_setup_logger`` and ``after_setup_task_logger``: the worker's and beat's own handlers)."""
    for handler in logger.handlers:
        if not any(isinstance(existing, RedactSecrets) for existing in handler.filters):
            handler.addFilter(RedactSecrets())
