from django.conf import settings
from django.core.management.base import BaseCommand

from apps.telegram.services import telegram_updates_delete_expired


class Command(BaseCommand):
    help = "Delete the bot's updates older than RETENTION_DAYS (chat and message ids). Celery beat runs it daily."

    def handle(self, *args, **options):
        deleted = telegram_updates_delete_expired()
        self.stdout.write(f"Deleted {deleted} Telegram updates older than {settings.RETENTION_DAYS} days.")
