"""The MongoDB collection of detected faces, one client per process.

MongoClient is not fork-safe, and Celery's prefork pool and gunicorn fork after import: the
client is created on first use and keyed by process id, so a forked child makes its own.
"""

import functools
import os

from django.conf import settings
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection

FACES_COLLECTION = "faces"


def faces_collection() -> Collection:
    return _faces_collection(settings.MONGO_URL, settings.MONGO_DB, os.getpid())


@functools.cache
def _faces_collection(url: str, database: str, pid: int) -> Collection:
    collection = MongoClient(url, tz_aware=True)[database][FACES_COLLECTION]
    # One document per face of an upload: a redelivered detection task upserts, never duplicates.
    collection.create_index([("upload_id", ASCENDING), ("face_index", ASCENDING)], unique=True)
    return collection
