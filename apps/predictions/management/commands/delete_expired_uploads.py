from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.predictions.services import uploads_delete_expired


class Command(BaseCommand):
    help = (
        "Delete photos, faces and results older than RETENTION_DAYS, unless a reviewer kept them for "
        "training, and what of them an earlier failure left behind. Celery beat runs the same every day "
        "(delete_expired_telegram_updates does the bot's updates). Exits with status 1 if some photos "
        "could not be deleted (the log says why; the next run tries again)."
    )

    def handle(self, *args, **options):
        deleted = uploads_delete_expired()
        self.stdout.write(
            f"Deleted {deleted.uploads} uploads older than {settings.RETENTION_DAYS} days "
            f"({deleted.kept_for_training} as old are kept for training), "
            f"and {deleted.face_documents} face documents and {deleted.files} photo files left behind."
        )
        if deleted.failed:
            raise CommandError(f"{deleted.failed} expired uploads could not be deleted; the log says why.")
