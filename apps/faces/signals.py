"""What a Celery pool process of an ml worker does when it starts and stops (connected in mairror.celery).

A process of a worker that consumes the models' queue loads and warms them in ``worker_process_init``,
before the pool hands it a task: the first photo after ``make run`` took 17.8 s, nearly all of it
TensorFlow and the models loading on that first task. It then beats (``apps.faces.heartbeats``), which
is how ``/healthz`` knows that a photo sent now is answered at once. Prefork runs this in each pool
process, so also in the one that replaces a crashed or killed process; the solo and thread pools send
no ``worker_process_init``, and their workers load on their first task and go uncounted.
"""

from __future__ import annotations

import logging
import os
import time

import pymongo
import pymongo.errors
from celery import current_app
from django.conf import settings

from apps.faces import heartbeats, pipeline
from apps.faces.mongo import faces_collection

logger = logging.getLogger(__name__)

MONGO_WARM_UP_SECONDS = 2.0  # short: a MongoDB that is down must not hold back the ready worker
_heartbeat: heartbeats.Heartbeat | None = None


def ml_process_start(sender=None, **kwargs) -> None:
    """Warm the models and start the heartbeat, if this worker consumes the queue detection is routed to.

    A failed warm-up (missing weights, say) is logged by Celery and leaves the process without a
    heartbeat: ``/healthz`` then shows no ready worker, and the first task fails as it did before.
    """
    global _heartbeat
    if settings.CELERY_TASK_ROUTES["faces_detect"]["queue"] not in current_app.amqp.queues.consume_from:
        return
    started = time.monotonic()
    pipeline.face_pipeline().warm_up()  # looked up now: worker settings may replace it (tests' stand-ins)
    logger.info("models loaded and warmed in %.1f s", time.monotonic() - started)
    _mongo_warm_up()
    _heartbeat = heartbeats.Heartbeat(f"{sender}:{os.getpid()}")
    _heartbeat.start()


def _mongo_warm_up() -> None:
    """The faces collection's client and index check, which the first detection would pay for (its
    connection and two round trips). MongoDB down is logged and left to that task, which retries."""
    try:
        with pymongo.timeout(MONGO_WARM_UP_SECONDS):
            faces_collection()
    except pymongo.errors.PyMongoError as error:
        logger.warning("MongoDB could not be reached at start (%s); the first detection connects", error)


def ml_process_stop(**kwargs) -> None:
    """Leave the ready workers at once, instead of after the heartbeat's TTL."""
    if _heartbeat is not None:
        _heartbeat.stop()
