from django.apps import AppConfig


class TelegramConfig(AppConfig):
    """The Telegram bot: photos arrive through a webhook, answers go out through the Bot API."""

    name = "apps.telegram"

    def ready(self):
        from apps.telegram.receivers import reply_when_analysed
        from apps.uploads.signals import upload_finished

        upload_finished.connect(reply_when_analysed, dispatch_uid="telegram_reply_when_analysed")
