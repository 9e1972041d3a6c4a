"""Every API operation, fuzzed from its own OpenAPI schema against gunicorn: no 500s, and every answer is one
the schema describes (status, content type, body).

Bounded (EXAMPLES per operation and generation mode) so it runs in a minute or two; hypothesis keeps no
database, so every run draws new inputs.
"""

import base64

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from rest_framework_api_key.models import APIKey
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools import devstack
from mairror import celery_app
from tests.support import app_env

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 50
LIST, CREATE = "GET /api/v1/predictions", "POST /api/v1/predictions"
RETRIEVE, DESTROY = "GET /api/v1/predictions/{prediction_id}", "DELETE /api/v1/predictions/{prediction_id}"
BATCH, CROP = "POST /api/v1/predictions/batch", "GET /api/v1/predictions/{prediction_id}/faces/{index}/crop"
# No worker runs here: a valid ``wait`` would hold each call that long for nothing. Shortened, still valid.
LONGEST_WAIT_SECONDS = 0.2
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def web(django_db_setup, services_dir):
    """gunicorn with upload rate limits out of the way: a 429 would hide what the fuzzer sends behind it."""
    env = app_env(ALLOWED_HOSTS="127.0.0.1", UPLOAD_RATE_PER_KEY="100000/minute", UPLOAD_RATE_PER_IP="100000/minute")
    service = devstack.start_web(env, devstack.free_port(), services_dir / "fuzz-web.log")
    yield service
    service.stop()
    celery_app.control.purge()  # no worker ran: drop the analyses the fuzzed uploads queued


def schema_operations(web) -> dict[str, schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{web.url}/api/schema/")
    return {operation.label: operation for operation in (result.ok() for result in schema.get_all_operations())}


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_every_operation_answers_as_its_schema_says(web, mode):
    _, key = APIKey.objects.create_key(name="fuzzer")
    # Every header a security scheme names, with the key: the fuzzer fills whichever scheme it picks.
    headers = {"Authorization": f"Api-Key {key}", "X-Api-Key": key}
    operations = schema_operations(web)
    assert set(operations) == {LIST, CREATE, RETRIEVE, DESTROY, BATCH, CROP}
    statuses = []

    for operation in operations.values():

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def answers_as_documented(case):
            _shorten_wait(case)
            response = case.call_and_validate(base_url=web.url, headers=headers, checks=CHECKS, timeout=30)
            statuses.append(response.status_code)

        answers_as_documented()

    assert len(statuses) >= len(operations) * EXAMPLES // 2, "the fuzzer barely ran"
    if mode == schemathesis.GenerationMode.POSITIVE:
        assert 401 not in statuses  # the key was sent: every answer got past authentication
        assert 200 in statuses
    else:
        assert 400 in statuses  # bad input is refused as such


def _shorten_wait(case) -> None:
    wait = (case.query or {}).get("wait")
    try:
        too_long = float(wait) > LONGEST_WAIT_SECONDS
    except (TypeError, ValueError):
        return  # absent, or not a number: as generated
    if too_long:
        case.query["wait"] = LONGEST_WAIT_SECONDS


def test_a_real_photo_goes_through_every_operation_as_documented(web, one_face_jpeg):
    """What random bytes never reach: an accepted photo, then reading, listing and deleting it."""
    _, key = APIKey.objects.create_key(name="fuzzer")
    headers = {"Authorization": f"Api-Key {key}"}
    operations = schema_operations(web)

    def call(label: str, **case):
        return operations[label].Case(**case).call_and_validate(base_url=web.url, headers=headers, checks=CHECKS)

    created = call(CREATE, body={"image": one_face_jpeg}, media_type="multipart/form-data")
    assert created.status_code == 202, created.text
    prediction_id = created.json()["id"]
    assert call(RETRIEVE, path_parameters={"prediction_id": prediction_id}).json()["id"] == prediction_id
    assert [item["id"] for item in call(LIST).json()["results"]] == [prediction_id]
    crop = call(CROP, path_parameters={"prediction_id": prediction_id, "index": 1})
    assert crop.status_code == 404  # no worker here: no face yet
    assert call(DESTROY, path_parameters={"prediction_id": prediction_id}).status_code == 204
    assert call(RETRIEVE, path_parameters={"prediction_id": prediction_id}).status_code == 404


def test_every_body_type_of_the_schema_takes_a_real_photo_as_documented(web, one_face_jpeg):
    _, key = APIKey.objects.create_key(name="fuzzer")
    operations = schema_operations(web)

    def call(label: str, **case):
        return (
            operations[label]
            .Case(**case)
            .call_and_validate(base_url=web.url, headers={"X-Api-Key": key}, checks=CHECKS)
        )

    bodies = [
        {"body": one_face_jpeg, "media_type": "image/*", "headers": {"Content-Type": "image/jpeg"}},
        {"body": one_face_jpeg, "media_type": "application/octet-stream"},
        {"body": {"image": base64.b64encode(one_face_jpeg).decode()}, "media_type": "application/json"},
    ]
    for body in bodies:
        created = call(CREATE, query={"wait": LONGEST_WAIT_SECONDS}, **body)
        assert created.status_code == 202, (body["media_type"], created.text)
    batch = call(BATCH, body={"images": [one_face_jpeg, b"not a photo"]}, media_type="multipart/form-data")
    assert batch.status_code == 202, batch.text
    assert [result.get("status") for result in batch.json()["results"]] == ["pending", None]
