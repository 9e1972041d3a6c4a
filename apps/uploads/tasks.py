"""What every pipeline task shares: retrying infrastructure errors, and never leaving an upload processing."""

import inspect
import logging

import botocore.exceptions
import kombu.exceptions
import pymongo.errors
import redis.exceptions
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.uploads.services import upload_fail

logger = logging.getLogger(__name__)

# Errors of the services around the models (MongoDB, Redis, SQL, file storage, S3), which
# usually go away on their own: retried with exponential backoff. Anything else is a bug or a
# bad input and fails at once.
INFRASTRUCTURE_ERRORS = (
    pymongo.errors.AutoReconnect,  # includes ServerSelectionTimeoutError and NetworkTimeout
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
    OperationalError,
    InterfaceError,
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    OSError,  # local storage; a missing file is handled before it gets here
)

# Soft: raised in the task. Hard: its pool process was killed, and the worker's main process calls on_failure.
TIME_LIMIT_ERRORS = (SoftTimeLimitExceeded, TimeLimitExceeded)

INFRASTRUCTURE_FAILURE = "A service the analysis depends on was unavailable for too long. Please try again later."
TIMED_OUT = "The analysis of this photo took too long and was stopped."
INTERNAL_FAILURE = "The photo could not be analysed because of an internal error."


class UploadTask(Task):
    """Base class of tasks that take an ``upload_id``.

    Infrastructure errors are retried (2, 4, 8 ... s apart, at most UPLOAD_TASK_RETRY_BACKOFF_MAX,
    UPLOAD_TASK_MAX_RETRIES times); when the retries run out, or on any other error, the upload
    is marked failed so that it never stays "processing" for ever; so is one past its time limit
    (``CELERY_TASK_SOFT_TIME_LIMIT`` and ``CELERY_TASK_TIME_LIMIT``, or the task's own).
    """

    autoretry_for = INFRASTRUCTURE_ERRORS
    retry_backoff = 2
    retry_backoff_max = settings.UPLOAD_TASK_RETRY_BACKOFF_MAX
    retry_jitter = True
    max_retries = settings.UPLOAD_TASK_MAX_RETRIES

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        upload_id = inspect.signature(self.run).bind(*args, **kwargs).arguments["upload_id"]
        if isinstance(exc, TIME_LIMIT_ERRORS):
            reason = TIMED_OUT
        elif isinstance(exc, INFRASTRUCTURE_ERRORS):
            reason = INFRASTRUCTURE_FAILURE
        else:
            reason = INTERNAL_FAILURE
        try:
            upload_fail(upload_id=upload_id, reason=reason)
        except INFRASTRUCTURE_ERRORS:
            logger.exception("could not mark upload %s failed after %s", upload_id, self.name)
