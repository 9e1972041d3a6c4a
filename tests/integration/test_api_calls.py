"""What an integrator does first, over HTTP against the real server and a real worker: one call per
photo (``?wait``), the photo in whichever body their client sends, several photos per request."""

import base64
import time

import httpx
import pytest
from rest_framework_api_key.models import APIKey

from devtools import devstack
from tests.support import app_env

pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = "/api/v1/predictions"


@pytest.fixture(scope="module")
def web(worker, services_dir, django_db_blocker):
    with django_db_blocker.unblock():
        env = app_env(ALLOWED_HOSTS="127.0.0.1")
    service = devstack.start_web(env, devstack.free_port(), services_dir / "api-calls-web.log")
    yield service
    service.stop()


@pytest.fixture
def api(web, one_face_jpeg):
    """A client with a key of its own, once the worker has analysed a first photo (its models are in)."""
    _, secret = APIKey.objects.create_key(name="integrator")
    with httpx.Client(base_url=web.url, headers={"X-Api-Key": secret}, timeout=60) as client:
        created = client.post(LIST_URL, content=one_face_jpeg, headers={"Content-Type": "image/jpeg"})
        deadline = time.monotonic() + 300
        while client.get(created.headers["Location"], params={"wait": 30}).json()["status"] != "done":
            assert time.monotonic() < deadline, "the worker never finished a first photo"
        yield client


def test_one_call_with_the_photo_as_the_body_answers_the_result(api, two_faces_jpeg):
    response = api.post(f"{LIST_URL}?wait=30", content=two_faces_jpeg, headers={"Content-Type": "image/jpeg"})

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "done"
    assert len(result["faces"]) == 2
    assert response.headers["Location"].endswith(f"{LIST_URL}/{result['id']}")
    left, right = result["faces"]  # the same astronaut twice, side by side: listed left to right
    assert [left["index"], right["index"]] == [1, 2]
    assert left["box"]["x"] < right["box"]["x"]
    assert left["box_relative"]["x"] < 0.5 < right["box_relative"]["x"]
    assert left["id"] != right["id"] and len(left["id"]) == 24
    for face in (left, right):
        assert abs(face["pose"]["yaw"]) < 30 and abs(face["pose"]["roll"]) < 30  # she faces the camera
        assert 0 < face["quality"]["sharpness"] <= 100 and 0 < face["quality"]["brightness"] <= 100
        assert face["quality"]["face_px"] == min(face["box"]["width"], face["box"]["height"])
        crop = api.get(face["crop_url"])
        assert crop.status_code == 200 and crop.content.startswith(b"\x89PNG")
    # the same face: the same pose and quality, within what MTCNN's landmarks move between the two copies
    for measure in ("yaw", "pitch", "roll"):
        assert abs(left["pose"][measure] - right["pose"][measure]) < 5, measure
    for measure in ("sharpness", "brightness"):
        assert abs(left["quality"][measure] - right["quality"][measure]) < 5, measure


def test_a_chunked_body_without_a_length_is_taken(api, one_face_jpeg):
    def chunks():
        for start in range(0, len(one_face_jpeg), 16384):
            yield one_face_jpeg[start : start + 16384]

    response = api.post(f"{LIST_URL}?wait=30", content=chunks(), headers={"Content-Type": "application/octet-stream"})

    assert response.status_code == 200, response.text
    assert len(response.json()["faces"]) == 1


def test_one_call_with_base64_json_and_a_bearer_key(api, one_face_jpeg):
    key = api.headers.pop("X-Api-Key")
    body = {"image": "data:image/jpeg;base64," + base64.b64encode(one_face_jpeg).decode()}

    response = api.post(f"{LIST_URL}?wait=30", json=body, headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "done"
    assert len(response.json()["faces"]) == 1


def test_a_batch_that_waits_answers_every_photo_in_order(api, one_face_jpeg, two_faces_jpeg):
    files = [
        ("images", ("two.jpg", two_faces_jpeg, "image/jpeg")),
        ("images", ("notes.jpg", b"not a photo", "image/jpeg")),
        ("images", ("one.jpg", one_face_jpeg, "image/jpeg")),
    ]

    response = api.post(f"{LIST_URL}/batch", params={"wait": 30}, files=files)

    assert response.status_code == 200, response.text
    two, notes, one = response.json()["results"]
    assert (two["status"], len(two["faces"])) == ("done", 2)
    assert notes["error"]["code"] == "unsupported_image"
    assert (one["status"], len(one["faces"])) == ("done", 1)
    assert api.get(one["url"]).json()["id"] == one["id"]


def test_a_key_in_the_url_is_refused_with_where_to_put_it(api, one_face_jpeg):
    key = api.headers.pop("X-Api-Key")

    response = api.post(
        LIST_URL, params={"api_key": key}, content=one_face_jpeg, headers={"Content-Type": "image/jpeg"}
    )

    assert response.status_code == 401
    assert "X-Api-Key: <key>" in response.json()["error"]["message"]
