"""The Celery app; its configuration is the ``CELERY_*`` part of the Django settings."""

import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from mairror.log_filters import redact_handlers

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mairror.settings")

app = Celery("mairror")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The worker and beat replace the root logger's handlers (LOGGING's console, which redacts secrets)
# with their own, and give "celery.task" its own: secrets are cut out there too.
after_setup_logger.connect(redact_handlers, weak=False)
after_setup_task_logger.connect(redact_handlers, weak=False)
