"""Settings of test_secrets_not_logged's worker: the real ones, with the app's, Django's, Celery's and
httpx's loggers at DEBUG, so that a secret in any of their records would reach the worker's log file.

The worker's ``-l info`` sets only the root logger's level; these loggers keep theirs. (pymongo's
DEBUG records hold whole commands, face crops included: left out.)
"""

from mairror.settings import *  # noqa: F403
from mairror.settings import LOGGING

DEBUG_LOGGERS = ("apps", "mairror", "django", "celery", "kombu", "redis", "httpx", "httpcore")

LOGGING = {
    **LOGGING,
    "root": {**LOGGING["root"], "level": "DEBUG"},
    "loggers": {name: {**LOGGING["loggers"].get(name, {}), "level": "DEBUG"} for name in DEBUG_LOGGERS},
}
