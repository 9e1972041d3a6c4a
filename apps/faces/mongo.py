"""The MongoDB collection of detected faces, one client per process.

MongoClient is not fork-safe, and Celery's prefork pool and gunicorn fork after import: the
client is created on first use and keyed by process id, so a forked child makes its own.

Writes are journaled (``j=True``): acknowledged means on disk, so a MongoDB crash right after a
detection step loses none of its faces (SecantusDB fsyncs its log for such a write; without it a
SIGKILL lost acknowledged documents). On a replica set, put ``w=majority`` in MONGO_URL as well.
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
    collection = MongoClient(url, tz_aware=True, journal=True)[database][FACES_COLLECTION]
    # One document per face of an upload: a redelivered detection task upserts, never duplicates.
    collection.create_index([("upload_id", ASCENDING), ("face_index", ASCENDING)], unique=True)
    return collection
