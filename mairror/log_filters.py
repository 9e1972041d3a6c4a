"""A logging filter that cuts secrets out of log records, wherever a careless message puts them.

Nothing here is meant to log a secret in the first place (see apps.telegram.bot_api); this is the
net under that: the bot token and the webhook secret from the settings, Bot API URLs, and anything
shaped like an API key (``<8 characters>.<32 characters>``) or an ``Api-Key`` header.
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


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatted here, once, so the traceback's text can be redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact(text: str) -> str:
    for secret in (settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_WEBHOOK_SECRET):
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text
