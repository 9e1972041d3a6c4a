"""Settings of test_secrets_not_logged's worker: the real ones, with the app's, Django's, Celery's and
httpx's loggers at DEBUG, so that a secret in any of their records would reach the worker's log file.

The worker's ``-l info`` sets only the root logger's level; these loggers keep theirs. (pymongo's
DEBUG records hold whole commands, face crops included: left out.) The loggers' own filters are
dropped: what keeps secrets out of the worker's log must be the filter on the handlers the worker
puts in place of LOGGING's (mairror.celery), which sees every logger's records, children included.
"""

from mairror.settings import *  # noqa: F403
from mairror.settings import LOGGING

DEBUG_LOGGERS = ("apps", "mairror", "django", "celery", "kombu", "redis", "httpx", "httpcore")


def _at_debug_without_filters(name: str) -> dict:
    config = {key: value for key, value in LOGGING["loggers"].get(name, {}).items() if key != "filters"}
    return {**config, "level": "DEBUG"}


LOGGING = {
    **LOGGING,
    "root": {**LOGGING["root"], "level": "DEBUG"},
    "loggers": {name: _at_debug_without_filters(name) for name in DEBUG_LOGGERS},
}
