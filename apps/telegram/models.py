from django.db import models

from apps.uploads.models import Upload


class TelegramUpdate(models.Model):
    """One update Telegram delivered to the webhook, and the bot's reply to it.

    The update id is the key: Telegram redelivers an update on any error or timeout, and a
    redelivered one finds its row and is acknowledged without being handled twice.
    """

    class ReplyStatus(models.TextChoices):
        PENDING = "pending", "Pending"  # being handled, or waiting for the photo's analysis
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"  # reply_failure_reason says why
        NONE = "none", "Nothing to answer"

    update_id = models.BigIntegerField(primary_key=True)
    chat_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    message_id = models.BigIntegerField(null=True, blank=True, help_text="The message the reply answers.")
    payload = models.JSONField(default=dict, blank=True, help_text="The update as received; emptied once handled.")
    upload = models.OneToOneField(
        Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="telegram_update"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    reply_status = models.CharField(max_length=16, choices=ReplyStatus, default=ReplyStatus.PENDING, db_index=True)
    reply_failure_reason = models.TextField(blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"update {self.update_id} ({self.reply_status})"
