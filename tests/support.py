"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np
from django.conf import settings
from django.db import connection, connections
from PIL import Image
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from apps.uploads.models import Upload

if TYPE_CHECKING:
    from ml.preprocessing import Face

# The first task of a fresh worker loads TensorFlow and both models: slow on a busy 2-core machine.
PIPELINE_TIMEOUT_SECONDS = 300


def make_client(name: str) -> tuple[APIClient, APIKey]:
    """An API client authenticated with a new key."""
    api_key, key = APIKey.objects.create_key(name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client, api_key


def encode(array: np.ndarray, image_format: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **params)
    return buffer.getvalue()


def photo_file(data: bytes, name: str = "photo.jpg") -> io.BytesIO:
    """A file object as a multipart upload wants it (the server ignores the name)."""
    file = io.BytesIO(data)
    file.name = name
    return file


def stored_files(root: Path | str | None = None) -> set[Path]:
    root = Path(root or settings.MEDIA_ROOT)
    return {path for path in root.rglob("*") if path.is_file()}


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database the test session really uses (after pytest-django renamed it)."""
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{settings_dict['NAME']}"
    if engine == "django.db.backends.postgresql":
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        host, port = settings_dict.get("HOST") or "127.0.0.1", settings_dict.get("PORT") or 5432
        return f"postgres://{user}:{password}@{host}:{port}/{settings_dict['NAME']}"
    raise NotImplementedError(f"no DATABASE_URL for {engine}")


def app_env(**extra: str) -> dict[str, str]:
    """The environment of a web or worker subprocess that shares this test session's stores."""
    return {
        "DATABASE_URL": database_url(connections["default"].settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "MONGO_URL": settings.MONGO_URL,
        "MONGO_DB": settings.MONGO_DB,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ML_WEIGHTS_DIR": str(settings.ML_WEIGHTS_DIR),
        "DJANGO_SECRET_KEY": "test-secret-key-for-subprocesses",
        **extra,
    }


@contextmanager
def celery_publishing_to(url: str) -> Iterator[None]:
    """This process's Celery app publishing to another broker (say, one that is down), then back.

    The pools are dropped as Celery itself does after a fork, so the next publish connects afresh.
    """
    from mairror import celery_app

    def point_at(broker_url: str) -> None:
        celery_app.conf.broker_url = broker_url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    previous = celery_app.conf.broker_url
    point_at(url)
    try:
        yield
    finally:
        point_at(previous)


def wait_until_finished(upload_id, timeout: float = PIPELINE_TIMEOUT_SECONDS) -> Upload:
    """Poll the database until the pipeline is done with an upload (done or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        upload = Upload.objects.get(pk=upload_id)
        if upload.is_finished:
            return upload
        if time.monotonic() > deadline:
            raise AssertionError(f"upload {upload_id} still {upload.status} after {timeout:.0f}s")
        time.sleep(0.5)


def make_face(index: int, crop_size: int = 32) -> Face:
    """A detected face as ``FacePipeline.find_faces`` returns it, with made-up numbers and pixels."""
    from ml.detection import Detection
    from ml.preprocessing import Face

    rng = np.random.default_rng(index)
    return Face(
        detection=Detection(
            box=(10.0 * index, 20.4, 30.6, 40.0),
            confidence=0.99 - index / 100,
            landmarks=rng.uniform(0, 100, (5, 2)),
        ),
        crop=rng.integers(0, 255, (crop_size, crop_size, 3), dtype=np.uint8),
    )


def finish_with_faces(upload: Upload, *faces: dict) -> list:
    """Leave an upload as the pipeline would: done, with a MongoDB document (crop) and a SQL row per face.

    Each dict overrides the made-up prediction of one face (face_index is its position).
    """
    from apps.faces.services import face_documents_store
    from apps.predictions.models import FaceEstimate

    face_ids = face_documents_store(
        upload_id=str(upload.pk), faces=[make_face(i) for i in range(len(faces))], model_version="ag-test"
    )
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DONE, timings={"total_ms": 1234.5})
    defaults = {
        "box_x": 182,
        "box_y": 64,
        "box_width": 83,
        "box_height": 107,
        "landmarks": {"left_eye": [205.1, 105.2], "right_eye": [245.3, 104.9]},
        "detection_confidence": 0.999,
        "age_value": 41.2,
        "age_low": 33.0,
        "age_high": 50.0,
        "age_level": 0.8,
        "gender_label": "female",
        "gender_probability": 0.87,
        "model_version": "ag-test",
    }
    return [
        FaceEstimate.objects.create(upload=upload, face_index=i, mongo_face_id=face_id, **{**defaults, **fields})
        for i, (face_id, fields) in enumerate(zip(face_ids, faces, strict=True))
    ]


def change_later(seconds: float, *changes) -> threading.Thread:
    """Run each of ``changes`` in another thread (with its own database connection), ``seconds`` apart
    and the first ``seconds`` from now, as a worker would change an upload while a client waits."""

    def run():
        try:
            for change in changes:
                time.sleep(seconds)
                change()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread
