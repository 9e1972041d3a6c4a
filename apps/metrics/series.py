"""Every ``mairror_*`` series a process records, and the failure reason codes.

prometheus-client, not django-prometheus plus a Celery exporter: what operators need here is the
pipeline's own facts (photos per channel, the stages' timings, failure reasons, the model each worker
serves), which neither package knows, so the app has to record them itself either way. django-prometheus
would add per-view latency and database counters we do not need, and a Celery exporter is one more
process reading task events (``worker_send_task_events``: a message per task state on the broker) to
report task states, which say nothing of why a photo failed. prometheus-client alone covers both sides,
and its multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``: each process writes its values to files, a
scrape adds them up) serves gunicorn's several workers and Celery's prefork pool, which the other two
rely on as well.

Label values are bounded: channels, statuses, stages, limiter scopes and reason codes are fixed
sets, views are the URL patterns' names, workers the Celery node names. A failure reason is a
sentence for people; ``failure_code`` maps it to one of a few codes, never to its text.
"""

from prometheus_client import Counter, Gauge, Histogram

from apps.faces.services import MISSING_IMAGE, PHOTO_GONE_FOR_NEW_MODEL, TOO_MANY_ATTEMPTS, UNREADABLE_IMAGE
from apps.predictions.services import STUCK_TOO_OFTEN
from apps.uploads.tasks import INFRASTRUCTURE_FAILURE, INTERNAL_FAILURE, TIMED_OUT

# Seconds: a stage takes milliseconds, a queue wait or a whole photo minutes in a backlog.
PIPELINE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Seconds: pages and the API in milliseconds, a ?wait= or an event stream up to 30 s.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# The pipeline's timings (Upload.timings, milliseconds) by the stage they measure.
STAGE_TIMINGS = {"queue": "queue_ms", "decode": "decode_ms", "detection": "detection_ms", "estimation": "estimation_ms"}
FAILURE_CODES = {
    UNREADABLE_IMAGE: "unreadable_image",
    MISSING_IMAGE: "photo_missing",
    PHOTO_GONE_FOR_NEW_MODEL: "photo_gone_for_new_model",
    TOO_MANY_ATTEMPTS: "too_many_attempts",
    STUCK_TOO_OFTEN: "stuck",
    TIMED_OUT: "timed_out",
    INFRASTRUCTURE_FAILURE: "service_unavailable",
    INTERNAL_FAILURE: "internal_error",
}
OTHER_FAILURE = "other"

PHOTOS = Counter(
    "mairror_photos",
    "Photos that reached a status: pending when accepted, then done or failed.",
    ["channel", "status"],
)
FAILURES = Counter("mairror_photo_failures", "Photos that failed, by reason code.", ["reason"])
STAGE_SECONDS = Histogram(
    "mairror_pipeline_stage_seconds",
    "Time per pipeline stage of each finished photo: queue (sent until detection took it), decode, detection, "
    "estimation (the models alone).",
    ["stage"],
    buckets=PIPELINE_BUCKETS,
)
PHOTO_SECONDS = Histogram(
    "mairror_photo_duration_seconds",
    "Time from upload to result of the photos done.",
    ["channel"],
    buckets=PIPELINE_BUCKETS,
)
REQUEST_SECONDS = Histogram(
    "mairror_http_request_duration_seconds",
    "Web requests, until the response's headers (a wait is included, an event stream's body is not).",
    ["view", "method", "status"],
    buckets=REQUEST_BUCKETS,
)
RATE_LIMIT_REFUSALS = Counter(
    "mairror_rate_limit_refusals",
    "Requests (or Telegram photos) an upload rate limit refused, per limit.",
    ["scope"],
)
# livemax: 1 while a live process of that worker serves the version (a scrape forgets dead processes).
WORKER_MODEL = Gauge(
    "mairror_worker_model_info",
    "1 for the model version a worker's processes estimate with, from their latest photo with faces.",
    ["worker", "version"],
    multiprocess_mode="livemax",
)


def failure_code(reason: str) -> str:
    """The code of a failure reason (``Upload.failure_reason``); ``other`` for a reason this map lacks."""
    return FAILURE_CODES.get(reason, OTHER_FAILURE)
