"""One browser sending several photos at once from the page, for real (gunicorn, its threads, one session
cookie): it may delete every one of them, and another browser none."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from apps.uploads.models import Upload
from devtools import devstack
from tests.support import app_env

pytestmark = pytest.mark.django_db(transaction=True)

AT_ONCE = 8


@pytest.fixture(scope="module")
def web(stores, services_dir, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = app_env(ALLOWED_HOSTS="127.0.0.1", PAGE_UPLOAD_RATE_PER_IP="")
    service = devstack.start_web(env, devstack.free_port(), services_dir / "sessions-web.log")
    yield service
    service.stop()


def send(client: httpx.Client, photo: bytes) -> str:
    response = client.post(
        "/",
        files={"image": ("a.jpg", photo, "image/jpeg")},
        headers={"X-CSRFToken": client.cookies["csrftoken"], "Accept": "application/json"},
    )
    assert response.status_code == 201, response.text
    return response.json()["url"].rsplit("/", 1)[1]


def browser(web, photo: bytes) -> tuple[httpx.Client, str]:
    """A browser that visited the page and sent a first photo (which gave it its session)."""
    client = httpx.Client(base_url=web.url, timeout=60, headers={"Referer": web.url + "/"})
    client.get("/")
    return client, send(client, photo)


def test_photos_sent_at_once_from_one_browser_are_all_its_own(web, one_face_jpeg):
    (alice, first), (mallory, _) = browser(web, one_face_jpeg), browser(web, one_face_jpeg)
    try:
        with ThreadPoolExecutor(AT_ONCE) as pool:
            upload_ids = [first, *pool.map(lambda _: send(alice, one_face_jpeg), range(AT_ONCE))]

        listed = alice.get("/").text
        assert all(f"/r/{upload_id}" in listed for upload_id in upload_ids)  # "Your photos"
        token = {"X-CSRFToken": mallory.cookies["csrftoken"]}
        assert all(mallory.post(f"/r/{pk}/delete", headers=token).status_code == 403 for pk in upload_ids)
        token = {"X-CSRFToken": alice.cookies["csrftoken"]}
        deleted = [alice.post(f"/r/{pk}/delete", headers=token).status_code for pk in upload_ids]
    finally:
        alice.close()
        mallory.close()

    assert deleted == [302] * (AT_ONCE + 1)
    assert not Upload.objects.filter(pk__in=upload_ids).exists()
