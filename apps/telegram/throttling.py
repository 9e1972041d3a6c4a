"""The bot's rate limit on photos: per chat (``apps.ratelimits``)."""

from apps.ratelimits import UploadRateThrottle


class TelegramUploadRatePerChat(UploadRateThrottle):
    """Photos sent to the bot from one chat. There is no HTTP request: the chat id stands in for it."""

    scope = "telegram_chat"
    rate_setting = "TELEGRAM_RATE_PER_CHAT"

    def get_cache_key(self, chat_id, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": chat_id}


def telegram_upload_wait(*, chat_id: int) -> int | None:
    """None when this chat may send a photo now, else the seconds it has to wait."""
    return TelegramUploadRatePerChat().wait_for(chat_id)
