"""Shared fixtures: real Redis and MongoDB (SecantusDB) for the session, a real Celery worker for the
integration tests, API clients, and photos made from scikit-image's sample images.

Integration tests use ``transactional_db`` so the worker subprocess sees committed rows. With
SQLite the test database is a file (see settings), with PostgreSQL it is pytest-django's
``test_<name>`` database; the worker gets a ``DATABASE_URL`` for whichever is in use.
"""

from pathlib import Path

import numpy as np
import pytest
import redis
import skimage.data
from django.conf import settings
from django.test import override_settings

from devtools import devstack
from mairror import celery_app
from mairror.settings import BASE_DIR
from tests.apps.telegram.fake_bot_api import FakeBotApi
from tests.apps.telegram.support import TOKEN
from tests.support import app_env, encode, make_client

TEST_MONGO_DB = "mairror_test"


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def stores(services_dir, tmp_path_factory):
    """Real Redis and MongoDB, and one media folder, for the session; this process's settings point at them.

    The media folder is shared with the worker subprocess, which reads the photos the tests upload.
    """
    redis_service = devstack.start_redis(services_dir / "redis")
    mongo_service = devstack.start_mongo(services_dir / "mongo")
    overrides = override_settings(
        REDIS_URL=redis_service.url,
        CELERY_BROKER_URL=redis_service.url,
        MONGO_URL=mongo_service.url,
        MONGO_DB=TEST_MONGO_DB,
        MEDIA_ROOT=str(tmp_path_factory.mktemp("media")),
        CACHES={"default": {**settings.CACHES["default"], "LOCATION": redis_service.url}},
        # Every test client comes from 127.0.0.1: no limits, except where a test sets its own.
        UPLOAD_RATE_PER_KEY=None,
        UPLOAD_RATE_PER_IP=None,
        PAGE_UPLOAD_RATE_PER_IP=None,
        TELEGRAM_RATE_PER_CHAT=None,
    )
    overrides.enable()
    celery_app.conf.broker_url = redis_service.url
    yield
    overrides.disable()
    mongo_service.stop()
    redis_service.stop()


@pytest.fixture(scope="module")
def fake_api():
    """A fake Telegram Bot API on loopback for the module (the Telegram cloud cannot run here)."""
    with FakeBotApi(TOKEN) as api:
        yield api


@pytest.fixture
def broker(stores):
    """The session's Redis, emptied before and after: the queues hold only what the test sent."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def faces(stores):
    """The MongoDB faces collection, emptied after the test."""
    from apps.faces.mongo import faces_collection

    collection = faces_collection()
    yield collection
    collection.delete_many({})


@pytest.fixture
def client_and_key(db):
    return make_client("alice")


@pytest.fixture
def api_client(client_and_key):
    return client_and_key[0]


@pytest.fixture
def other_client_and_key(db):
    return make_client("mallory")


@pytest.fixture(scope="session")
def one_face_jpeg() -> bytes:
    return encode(skimage.data.astronaut(), quality=92)


@pytest.fixture(scope="session")
def two_faces_jpeg() -> bytes:
    astronaut = skimage.data.astronaut()
    return encode(np.concatenate([astronaut, astronaut], axis=1), quality=92)


@pytest.fixture(scope="session")
def no_face_jpeg() -> bytes:
    return encode(skimage.data.coffee(), quality=92)


@pytest.fixture(scope="session")
def model_weights() -> Path:
    weights = Path(settings.ML_WEIGHTS_DIR)
    if not (weights / "model.json").exists():
        pytest.fail(f"no trained model in {weights.relative_to(BASE_DIR)} (model.json + age_gender.keras)")
    return weights


@pytest.fixture(scope="module")
def worker_env() -> dict[str, str]:
    """Extra environment for the module's worker (a module overrides this to use S3, say)."""
    return {}


@pytest.fixture(scope="module")
def worker(stores, django_db_setup, django_db_blocker, model_weights, services_dir, worker_env):
    """A real Celery worker (queues celery and ml) on the session's stores and test database.

    One per module, so modules that configure storage differently never share a worker; the
    broker is emptied first so that no task left by an earlier module reaches this one.
    """
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    with django_db_blocker.unblock():
        env = app_env(**worker_env)
    service = devstack.start_worker(env, log_file=services_dir / "worker.log")
    yield service
    service.stop()
