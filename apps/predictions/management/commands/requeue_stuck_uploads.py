from django.conf import settings
from django.core.management.base import BaseCommand

from apps.predictions.services import uploads_requeue_stuck


class Command(BaseCommand):
    help = (
        f"Send uploads stuck (pending or processing) for longer than STUCK_UPLOAD_MINUTES through the pipeline "
        f"again; fail those already requeued MAX_UPLOAD_REQUEUES times. What Celery beat runs every "
        f"{settings.SWEEP_STUCK_UPLOADS_SECONDS} s, for cron where beat does not run."
    )

    def handle(self, *args, **options):
        counts = uploads_requeue_stuck()
        self.stdout.write(f"Requeued {counts['requeued']} stuck uploads, failed {counts['failed']}.")
