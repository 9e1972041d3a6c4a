"""Django settings: everything that differs between machines comes from the environment, read here only.

``var/devstack.env`` (written by ``make run``) is a fallback for variables that are not set, so
``manage.py`` commands run next to a running devstack reach its database, Redis and MongoDB.
"""

import sys
from datetime import timedelta
from pathlib import Path

import environ
from botocore.config import Config
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
DEVSTACK_ENV_FILE = VAR_DIR / "devstack.env"
if DEVSTACK_ENV_FILE.exists():
    env.read_env(DEVSTACK_ENV_FILE, overwrite=False)


def _path_from_env(name: str, default: Path) -> Path:
    """A path setting; relative values are taken from the repository root, not the working directory."""
    path = Path(env(name, default=str(default)))
    return path if path.is_absolute() else BASE_DIR / path


# --- core ------------------------------------------------------------------------------------

# Only for a laptop: `manage.py check --deploy` flags it, and gunicorn refuses it (see "security").
DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-set-DJANGO_SECRET_KEY"  # noqa: S105 - public on purpose
SECRET_KEY = env("DJANGO_SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "axes",
    "apps.uploads",
    "apps.faces",
    "apps.predictions",
    "apps.api",
    "apps.web",
    "apps.telegram",
    "apps.metrics",
]

MIDDLEWARE = [
    "apps.metrics.middleware.request_metrics",  # first: times the whole chain
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "mairror.middleware.AsyncWhiteNoiseMiddleware",  # WhiteNoise, without making the chain synchronous
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # answers a locked-out login (last, as django-axes asks)
]

# Admin logins (any Django login): django-axes counts failures in the database, per account and per
# client address (the rate limits' address: apps.ratelimits.client_address), and after
# ADMIN_LOGIN_FAILURE_LIMIT of either refuses logins with 429 "Account locked: too many login attempts.
# Please try again later." for ADMIN_LOGIN_COOLOFF_MINUTES; a successful login resets the account's count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ADMIN_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.ratelimits.client_address"
AXES_VERBOSE = False  # no banner on every manage.py command

ROOT_URLCONF = "mairror.urls"
WSGI_APPLICATION = "mairror.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.web.context_processors.retention",
            ],
        },
    },
]

# --- security --------------------------------------------------------------------------------

# Served by gunicorn with DEBUG off means served to people: a key from the repository would let
# anyone forge sessions, so the process refuses to start. (`make run` makes a key of its own; tests and
# manage.py commands never import gunicorn.)
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG and ("gunicorn" in sys.modules or "uvicorn" in sys.modules):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY is not set: refusing to serve with the development key.")

# The site is reached over HTTPS only, directly or through a TLS-terminating proxy.
SECURE = env.bool("DJANGO_SECURE", default=False)
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    # Only behind a proxy that sets this header itself, overwriting what the client sent.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # load balancers probe and Prometheus scrapes over plain HTTP
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=365 * 24 * 3600) if SECURE else 0
# Opt-in: they bind every subdomain, and a preload list entry takes months to undo.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
# `check --deploy` warns while these two are off; off is the operator's decision above, not an oversight.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # pages send the token from their form, no script reads the cookie
# Origins (scheme://host[:port]) that may post forms, needed when a proxy changes the Host.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Content-Security-Policy (django-csp): scripts and styles from this site only, inline ones only
# with the response's nonce (the API docs page); views that need more widen it themselves.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "upgrade-insecure-requests": SECURE,
    },
}

# --- database --------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the Celery worker write to the same file: WAL lets readers run beside
    # a writer, IMMEDIATE transactions and a timeout make writers queue instead of failing.
    # synchronous=NORMAL: in WAL mode a commit survives any crash of a process (a SIGKILLed worker
    # loses nothing committed) and only a power cut can undo the last ones, and commits skip the
    # fsync that cost ~0.5 ms each here (an upload commits five times). PostgreSQL in production.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not the in-memory default, so worker subprocesses in the tests see the same rows.
    # TEST_DB_NAME lets two test runs share a checkout without sharing a database.
    DATABASES["default"]["TEST"] = {"NAME": str(_path_from_env("TEST_DB_NAME", VAR_DIR / "test-db.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- files -----------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = _path_from_env("MEDIA_ROOT", VAR_DIR / "media")
MEDIA_URL = "media/"

AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
# botocore waits 60 s per attempt by default: an S3 that stops answering would hold an upload
# request until gunicorn kills it. Bounded, the client gets a 503 with Retry-After instead.
AWS_S3_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2})
if AWS_STORAGE_BUCKET_NAME:
    # django-storages reads the AWS_* settings; objects stay private (signed URLs only).
    AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default=None)
    AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", default=None)
    AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", default=None)
    AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default=None)
    AWS_DEFAULT_ACL = None
    AWS_S3_FILE_OVERWRITE = False

STORAGES = {
    "default": {
        "BACKEND": "storages.backends.s3.S3Storage"
        if AWS_STORAGE_BUCKET_NAME
        else "django.core.files.storage.FileSystemStorage"
    },
    # No manifest: pages render without a prior collectstatic (tests, a fresh checkout).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- limits on what people send ---------------------------------------------------------------

MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", default=15 * 1024 * 1024)
# Photos in one POST /api/v1/predictions/batch, each within MAX_UPLOAD_BYTES, and the most bytes all
# of them together may be (a longer body is refused unread, 413).
MAX_BATCH_PHOTOS = env.int("MAX_BATCH_PHOTOS", default=16)
MAX_BATCH_BYTES = env.int("MAX_BATCH_BYTES", default=64 * 1024 * 1024)
# A request body that stops arriving for this long is answered 408 and its connection dropped (mairror.asgi).
REQUEST_BODY_IDLE_SECONDS = env.float("REQUEST_BODY_IDLE_SECONDS", default=10.0)
MAX_IMAGE_PIXELS = env.int("MAX_IMAGE_PIXELS", default=40_000_000)
# Smaller photos cannot hold a face MTCNN finds (its smallest window is 12 px).
MIN_IMAGE_SIDE = env.int("MIN_IMAGE_SIDE", default=24)
# Faces analysed per photo, the largest first; a crowd photo beyond this still gets a result.
MAX_FACES_PER_PHOTO = env.int("MAX_FACES_PER_PHOTO", default=100)
# Detection runs on the photo shrunk to this short side: larger finds smaller faces in big
# photos (a crowd on a phone photo) at the cost of time; the smallest face found is about 1/20 of it.
DETECTION_MAX_SHORT_SIDE = env.int("DETECTION_MAX_SHORT_SIDE", default=400)

# --- privacy ---------------------------------------------------------------------------------

# Photos and faces are deleted this many days after upload, unless a reviewer kept them for training.
RETENTION_DAYS = env.int("RETENTION_DAYS", default=30)
# An upload pending or processing for longer than this is requeued by the sweeper (while the ml
# queue holds messages, only one not waiting in it: see apps.predictions.services) ...
STUCK_UPLOAD_MINUTES = env.int("STUCK_UPLOAD_MINUTES", default=20)
# ... at most this many times, then it fails with a reason.
MAX_UPLOAD_REQUEUES = env.int("MAX_UPLOAD_REQUEUES", default=3)

# --- rate limits (DRF rate strings: "N/second|minute|hour|day") --------------------------------

UPLOAD_RATE_PER_KEY = env("UPLOAD_RATE_PER_KEY", default="60/minute")
UPLOAD_RATE_PER_IP = env("UPLOAD_RATE_PER_IP", default="30/minute")
PAGE_UPLOAD_RATE_PER_IP = env("PAGE_UPLOAD_RATE_PER_IP", default="10/minute")
TELEGRAM_RATE_PER_CHAT = env("TELEGRAM_RATE_PER_CHAT", default="10/minute")
# Proxies (load balancer, nginx) in front of the web processes, each adding to X-Forwarded-For:
# the client address is the entry the nearest of them added. 0: REMOTE_ADDR, and a client's own
# X-Forwarded-For is ignored (else it could dodge the per-IP limits by inventing addresses).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- services --------------------------------------------------------------------------------

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
MONGO_URL = env("MONGO_URL", default="mongodb://127.0.0.1:27017")
MONGO_DB = env("MONGO_DB", default="mairror")
ML_WEIGHTS_DIR = _path_from_env("ML_WEIGHTS_DIR", BASE_DIR / "ml" / "weights")
# The rate limits' counters (apps.ratelimits), shared by every process. Short
# timeouts: an unreachable Redis is noticed within a second and the limiter lets requests through.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mairror-cache",  # apart from Celery's keys in the same database
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

# --- models: the registry and training from reviews (apps.predictions) ---------------------------

# How often an ml worker process asks which model version is active (one SQL query), between two tasks: a
# promotion reaches every worker within this many seconds, each loading it before it drops the old one. 0: before
# every task.
MODEL_VERSION_CHECK_SECONDS = env.float("MODEL_VERSION_CHECK_SECONDS", default=15.0)
# Where a worker keeps the weights it fetched from the file storage, a folder per version.
MODEL_CACHE_DIR = _path_from_env("MODEL_CACHE_DIR", VAR_DIR / "models")
# train_from_reviews: the data sets the shipped model was trained on (their train splits are the replay that keeps
# a fine-tune from forgetting, their test splits fixed evaluation sets beside the reviewed faces' own), how many of
# their faces a fine-tune replays, and where a run keeps its files (the reviewed faces' go when it ends) and the
# replay faces' aligned crops.
MODEL_TRAINING_DATA_DIR = _path_from_env("MODEL_TRAINING_DATA_DIR", BASE_DIR.parent / "shared" / "data")
MODEL_TRAINING_SETS = env.list("MODEL_TRAINING_SETS", default=["utkface", "korean_family_age", "scut_fbp5500"])
MODEL_TRAINING_REPLAY_SIZE = env.int("MODEL_TRAINING_REPLAY_SIZE", default=2000)
MODEL_TRAINING_DIR = _path_from_env("MODEL_TRAINING_DIR", VAR_DIR / "training")
# A candidate measured worse than the active version on any evaluation set by more than this is promoted only by
# force: its age error (MAE, or the distance to the age group) by more years, its gender accuracy by more points.
MODEL_PROMOTION_MARGIN_YEARS = env.float("MODEL_PROMOTION_MARGIN_YEARS", default=0.25)
MODEL_PROMOTION_MARGIN_GENDER = env.float("MODEL_PROMOTION_MARGIN_GENDER", default=0.01)

# --- Telegram bot ----------------------------------------------------------------------------

# From @BotFather. Empty: the bot is off (the webhook answers 403 while the secret is empty too).
TELEGRAM_BOT_TOKEN = env("TELEGRAM_BOT_TOKEN", default="")
# Sent back by Telegram in X-Telegram-Bot-Api-Secret-Token; 1-256 characters A-Z a-z 0-9 _ -.
TELEGRAM_WEBHOOK_SECRET = env("TELEGRAM_WEBHOOK_SECRET", default="")
TELEGRAM_API_BASE = env("TELEGRAM_API_BASE", default="https://api.telegram.org")

# --- metrics (apps.metrics) ----------------------------------------------------------------------

# The token Prometheus sends to /metrics and to each worker's metrics (Authorization: Bearer). Empty:
# no metrics (/metrics answers 404). PROMETHEUS_MULTIPROC_DIR, read by prometheus-client itself, names
# the folder where each process keeps its values for the scrapes to add up.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# host:port on which each Celery worker serves its own /metrics (a fleet of worker machines). Empty: none.
WORKER_METRICS_ADDRESS = env("WORKER_METRICS_ADDRESS", default="")

# --- Celery ----------------------------------------------------------------------------------

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Pipeline tasks retry an unavailable service (MongoDB, Redis, SQL, storage) this many times,
# 2, 4, 8 ... s apart (with jitter) but never more than the backoff max; then the upload fails
# with a reason. The defaults wait up to about 8 minutes in all.
UPLOAD_TASK_MAX_RETRIES = env.int("UPLOAD_TASK_MAX_RETRIES", default=8)
UPLOAD_TASK_RETRY_BACKOFF_MAX = env.int("UPLOAD_TASK_RETRY_BACKOFF_MAX", default=300)
# Each run of a pipeline step on an upload is counted: detection's first run, each retry, each
# sweeper requeue, and the same for estimation. More runs than that mean the broker redelivered a
# task after its worker died (acks_late + reject_on_worker_lost): a photo that kills the worker (out
# of memory, a crash in a decoder) would come back for ever. Past this many runs the upload fails
# with a reason instead. The default is one above the legitimate runs of both steps
# (2 x (1 + the retries + MAX_UPLOAD_REQUEUES)), so a single lost worker is also forgiven.
MAX_PROCESSING_ATTEMPTS = env.int(
    "MAX_PROCESSING_ATTEMPTS", default=2 * (1 + UPLOAD_TASK_MAX_RETRIES + MAX_UPLOAD_REQUEUES) + 1
)
# Redis hands a task whose worker vanished (killed, machine lost) to another worker after this
# many seconds. It must exceed the longest retry countdown (UPLOAD_TASK_RETRY_BACKOFF_MAX),
# or countdown retries would be delivered twice. The socket timeouts and the publish retries
# below bound how long a web request that queues work blocks on an unreachable Redis (measured:
# 0.5 s when it is stopped, under 9 s when it hangs), so it answers 503 instead of hanging.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900),
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
# The sweeper (the task uploads_requeue_stuck, run by Celery beat) sends uploads stuck for longer
# than STUCK_UPLOAD_MINUTES through the pipeline again. That timeout (20 min) is longer than the
# visibility timeout (15 min), so the broker's own redelivery of a dead worker's task comes first
# and the sweeper only catches what the broker lost (a publish that never happened, a Redis that
# lost its data); and longer than the task retries above (about 8 min), which do not touch the
# upload. A duplicate sent anyway is harmless: tasks are idempotent. A sweep expires after one
# period, so sweeps do not pile up while no worker runs.
SWEEP_STUCK_UPLOADS_SECONDS = env.int("SWEEP_STUCK_UPLOADS_SECONDS", default=300)
CELERY_BEAT_SCHEDULE = {
    "requeue-stuck-uploads": {
        "task": "uploads_requeue_stuck",
        "schedule": SWEEP_STUCK_UPLOADS_SECONDS,
        "options": {"expires": SWEEP_STUCK_UPLOADS_SECONDS},
    },
    # Photos and faces past RETENTION_DAYS, unless kept for training (apps.predictions.services).
    # At a time of day, not "every 24 h": beat's schedule file may not outlive its container
    # (docker-compose), and an interval starts again from each restart.
    "delete-expired-uploads": {
        "task": "uploads_delete_expired",
        "schedule": crontab(hour=3, minute=30),
        "options": {"expires": 24 * 3600},
    },
    # The bot's own: its updates past RETENTION_DAYS (apps.telegram.services).
    "delete-expired-telegram-updates": {
        "task": "telegram_updates_delete_expired",
        "schedule": crontab(hour=3, minute=30),
        "options": {"expires": 24 * 3600},
    },
}
# Chains pass results inside the next task's message; nothing reads a result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged only once it finished, and requeued if its worker dies mid-task:
# every task is idempotent, so running one twice is harmless, losing one is not.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "celery"
# GPU machines run `celery -A mairror worker -Q ml` and take only the model work. By task name: every
# task has an explicit one (its service's), so moving a task to another module changes no route.
CELERY_TASK_ROUTES = {
    "faces_detect": {"queue": "ml"},
    "faces_estimate": {"queue": "ml"},
    "model_candidate_train": {"queue": "ml"},  # train_from_reviews: on a machine with the models (a GPU's)
    # Network I/O with the Bot API, no model work.
    "telegram_*": {"queue": "celery"},
}
# Every task has a soft time limit, which raises SoftTimeLimitExceeded in it (a pipeline step then
# fails its upload with a reason), and a hard one, past which its pool process is killed and replaced
# (the upload is failed all the same): a hung task frees its worker. The defaults leave room for the
# first task of a fresh worker, which also loads TensorFlow and the models (up to a minute on a busy
# 2-core machine). Hard limits stay under the visibility timeout, or Redis would hand a task that is
# still running to a second worker. A task's limits travel in its message: the process that queues it
# (the web server, beat) decides them, so every process needs the same values.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=330)
# Detection gets less: one hung photo holds every upload queued behind it on ``ml`` (a GPU machine's
# only worker). Once the models are loaded it takes about 0.1 s for a 640 px photo (docs/benchmarks.md).
DETECTION_SOFT_TIME_LIMIT = env.int("DETECTION_SOFT_TIME_LIMIT", default=120)
DETECTION_TIME_LIMIT = env.int("DETECTION_TIME_LIMIT", default=150)
# Retention gets more: it deletes a day's expired uploads one by one. Stopped by the soft limit
# between two of them, it leaves the rest to the next run.
RETENTION_SOFT_TIME_LIMIT = env.int("RETENTION_SOFT_TIME_LIMIT", default=780)
RETENTION_TIME_LIMIT = env.int("RETENTION_TIME_LIMIT", default=840)
# A fine-tune gets hours. Its task is acknowledged when it starts, not when it ends: it is not redelivered after
# the visibility timeout, nor after its worker died (a run still unfinished past its hard limit is failed when the
# next one is asked for).
MODEL_TRAINING_SOFT_TIME_LIMIT = env.int("MODEL_TRAINING_SOFT_TIME_LIMIT", default=4 * 3600)
MODEL_TRAINING_TIME_LIMIT = env.int("MODEL_TRAINING_TIME_LIMIT", default=4 * 3600 + 300)

# --- API -------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.api.authentication.HasApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.JSONParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Mairror API",
    "DESCRIPTION": "Age and gender, with boxes and honest confidence, for every face in a photo.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components: the photo is then a binary file, not a URI string.
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Served from this app, not a CDN: self-hosted installs may have no internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# --- logging ---------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Secrets (the bot token, the webhook secret, API keys) are cut out of every record that
    # reaches the console handler, whichever logger made it; the Celery worker and beat replace
    # it with their own handlers, and mairror.celery puts the same filter on those.
    "filters": {"redact_secrets": {"()": "mairror.log_filters.RedactSecrets"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Without this, Django's own "console" handler (DEFAULT_LOGGING, no redaction) stays on
        # "django" and prints its records a second time when DEBUG is on: they go to the root's.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # httpx logs every request's URL at INFO, and Bot API URLs contain the bot's token: its
        # records are redacted at the source too, for any handler besides ours (it has no children;
        # httpcore has, and a logger's filter never sees their records: its handlers do it).
        "httpx": {"level": "WARNING", "filters": ["redact_secrets"]},
        "httpcore": {"level": "WARNING"},
    },
}
