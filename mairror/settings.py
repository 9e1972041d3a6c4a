"""Django settings: everything that differs between machines comes from the environment, read here only.

``var/devstack.env`` (written by ``make run``) is a fallback for variables that are not set, so
``manage.py`` commands run next to a running devstack reach its database, Redis and MongoDB.
"""

from pathlib import Path

import environ

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

SECRET_KEY = env("DJANGO_SECRET_KEY", default="django-insecure-development-only-set-DJANGO_SECRET_KEY")
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
    "apps.uploads",
    "apps.faces",
    "apps.predictions",
    "apps.web",
    "apps.telegram",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
            ],
        },
    },
]

# --- database --------------------------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the Celery worker write to the same file: WAL lets readers run beside
    # a writer, IMMEDIATE transactions and a timeout make writers queue instead of failing.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
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
# An upload pending or processing for longer than this is requeued by the sweeper ...
STUCK_UPLOAD_MINUTES = env.int("STUCK_UPLOAD_MINUTES", default=20)
# ... at most this many times, then it fails with a reason.
MAX_UPLOAD_REQUEUES = env.int("MAX_UPLOAD_REQUEUES", default=3)

# --- rate limits (DRF rate strings: "N/second|minute|hour|day") --------------------------------

UPLOAD_RATE_PER_KEY = env("UPLOAD_RATE_PER_KEY", default="60/minute")
UPLOAD_RATE_PER_IP = env("UPLOAD_RATE_PER_IP", default="30/minute")
PAGE_UPLOAD_RATE_PER_IP = env("PAGE_UPLOAD_RATE_PER_IP", default="10/minute")
TELEGRAM_RATE_PER_CHAT = env("TELEGRAM_RATE_PER_CHAT", default="10/minute")

# --- services --------------------------------------------------------------------------------

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
MONGO_URL = env("MONGO_URL", default="mongodb://127.0.0.1:27017")
MONGO_DB = env("MONGO_DB", default="mairror")
ML_WEIGHTS_DIR = _path_from_env("ML_WEIGHTS_DIR", BASE_DIR / "ml" / "weights")

# --- Telegram bot ----------------------------------------------------------------------------

# From @BotFather. Empty: the bot is off (the webhook answers 403 while the secret is empty too).
TELEGRAM_BOT_TOKEN = env("TELEGRAM_BOT_TOKEN", default="")
# Sent back by Telegram in X-Telegram-Bot-Api-Secret-Token; 1-256 characters A-Z a-z 0-9 _ -.
TELEGRAM_WEBHOOK_SECRET = env("TELEGRAM_WEBHOOK_SECRET", default="")
TELEGRAM_API_BASE = env("TELEGRAM_API_BASE", default="https://api.telegram.org")

# --- Celery ----------------------------------------------------------------------------------

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis hands a task whose worker vanished (killed, machine lost) to another worker after this
# many seconds. It must exceed the longest retry countdown (UploadTask.retry_backoff_max, 300 s),
# or countdown retries would be delivered twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=900)}
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
# GPU machines run `celery -A mairror worker -Q ml` and take only the model work.
CELERY_TASK_ROUTES = {
    "apps.faces.tasks.detect_faces": {"queue": "ml"},
    "apps.predictions.tasks.predict_ages": {"queue": "ml"},
    # Network I/O with the Bot API, no model work.
    "apps.telegram.tasks.*": {"queue": "celery"},
}

# --- API -------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.predictions.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.predictions.authentication.HasApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.JSONParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.predictions.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Mairror API",
    "DESCRIPTION": "Age and gender, with boxes and honest confidence, for every face in a photo.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
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
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # httpx logs every request's URL at INFO, and Bot API URLs contain the bot's token.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
