"""The Celery app; its configuration is the ``CELERY_*`` part of the Django settings."""

import os

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
)

from apps.faces.signals import ml_process_start, ml_process_stop
from apps.predictions.signals import ml_process_serve_active, ml_task_serve_active
from mairror.log_filters import redact_handlers

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mairror.settings")

app = Celery("mairror")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The worker and beat replace the root logger's handlers (LOGGING's console, which redacts secrets)
# with their own, and give "celery.task" its own: secrets are cut out there too.
after_setup_logger.connect(redact_handlers, weak=False)
after_setup_task_logger.connect(redact_handlers, weak=False)

# Each pool process of an ml worker loads and warms the models before it takes a task, then beats for
# /healthz. The pool kills a process started in place of a dead one that is not up within
# worker_proc_alive_timeout: warming takes 5-20 s on two busy cores, and at the default 4 s each
# replacement was killed in turn, for ever. Two minutes.
app.conf.worker_proc_alive_timeout = 120.0
# The active model version first (apps.predictions.signals), so that the warm-up warms what the process will serve.
worker_process_init.connect(ml_process_serve_active, weak=False)
worker_process_init.connect(ml_process_start, weak=False)
worker_process_shutdown.connect(ml_process_stop, weak=False)
# And between tasks, a promotion.
task_prerun.connect(ml_task_serve_active, weak=False)
