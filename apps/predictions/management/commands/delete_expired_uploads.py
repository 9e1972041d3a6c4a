from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.predictions.services import expired_data_delete


class Command(BaseCommand):
    help = (
        "Delete photos, faces and results older than RETENTION_DAYS, unless a reviewer kept them for "
        "training, and the Telegram updates of that age. Celery beat runs the same every day. Exits "
        "with status 1 if some photos could not be deleted (the log says why; the next run tries again)."
    )

    def handle(self, *args, **options):
        deleted = expired_data_delete()
        self.stdout.write(
            f"Deleted {deleted.uploads} uploads older than {settings.RETENTION_DAYS} days "
            f"({deleted.kept_for_training} as old are kept for training) "
            f"and {deleted.telegram_updates} Telegram updates."
        )
        if deleted.failed:
            raise CommandError(f"{deleted.failed} expired uploads could not be deleted; the log says why.")
