"""Strangers try to reach what is not theirs, and fail.

What is tested elsewhere and not repeated here:
- key B reads, lists and deletes key A's upload: 404 (tests/apps/api/test_apis.py,
  test_a_client_sees_only_what_its_key_created); requests without or with a bad key: 401 (same file);
- another browser cannot delete a page upload: 403, and API uploads are not reachable from the page
  (tests/apps/web/test_views.py);
- chat B's /forget leaves chat A's photos (tests/apps/telegram/test_services.py,
  test_forget_deletes_everything_the_chat_sent_and_nothing_else);
- reviewers cannot change or delete uploads, predictions or reviews, nor see users or keys, and
  anonymous visitors are sent to the login (tests/apps/predictions/test_admin.py).
"""

import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import ProtectedError
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from tests.support import finish_with_faces, photo_file

pytestmark = pytest.mark.django_db

LIST_URL = "/api/v1/predictions"


def client_with_new_key(name: str) -> tuple[APIClient, str]:
    """An API client, and the key in plain text as create_api_key prints it."""
    out = StringIO()
    call_command("create_api_key", name, stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client, key


def uploaded_with(client, data: bytes) -> Upload:
    response = client.post(LIST_URL, {"image": photo_file(data)}, format="multipart")
    assert response.status_code == 202, response.content
    return Upload.objects.get(pk=response.json()["id"])


def all_stored_text() -> str:
    """Every value of every column of every table, as text."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # table names from the database itself
            values += [str(value) for row in cursor.fetchall() for value in row]
    return "\n".join(values)


# --- API keys --------------------------------------------------------------------------------------


def test_the_database_holds_only_a_hash_of_each_key(one_face_jpeg):
    client, key = client_with_new_key("alice")
    uploaded_with(client, one_face_jpeg)  # the key used, so its upload row is stored too

    stored = all_stored_text()

    prefix, secret = key.split(".")
    assert key not in stored
    assert secret not in stored
    assert prefix in stored  # the prefix finds a key; the secret part is checked against the hash


def test_waiting_on_anothers_upload_is_not_found_at_once(one_face_jpeg):
    alice, _ = client_with_new_key("alice")
    mallory, _ = client_with_new_key("mallory")
    upload = uploaded_with(alice, one_face_jpeg)  # pending: no worker here

    started = time.monotonic()
    response = mallory.get(f"{LIST_URL}/{upload.pk}", {"wait": "5"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert time.monotonic() - started < 4  # it did not wait to learn nothing
    assert response.json() == mallory.get(f"{LIST_URL}/{uuid.uuid4()}").json()  # the same as an id that never was


def test_a_revoked_key_is_refused_with_the_reason_and_its_uploads_stay(one_face_jpeg):
    client, key = client_with_new_key("alice laptop")
    upload = uploaded_with(client, one_face_jpeg)
    out = StringIO()

    call_command("revoke_api_key", key.split(".")[0], stdout=out)

    api_key = APIKey.objects.get(prefix=key.split(".")[0])
    assert out.getvalue() == f"Revoked API key {api_key.prefix!r} ('alice laptop').\n"
    for response in (client.get(LIST_URL), client.post(LIST_URL, {"image": photo_file(one_face_jpeg)})):
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "The API key has been revoked."
    assert Upload.objects.filter(pk=upload.pk, owner=api_key).exists()
    with pytest.raises(ProtectedError):
        api_key.delete()
    assert Path(upload.image.path).exists()


def test_revoking_by_name_revokes_every_key_of_that_name_and_nothing_else(one_face_jpeg):
    first, _ = client_with_new_key("telegram-bot")
    second, _ = client_with_new_key("telegram-bot")
    other, _ = client_with_new_key("alice")
    out = StringIO()

    call_command("revoke_api_key", "telegram-bot", stdout=out)

    assert out.getvalue().count("Revoked API key") == 2
    assert [first.get(LIST_URL).status_code, second.get(LIST_URL).status_code] == [401, 401]
    assert other.get(LIST_URL).status_code == 200
    with pytest.raises(CommandError, match="No usable API key has the prefix or name 'telegram-bot'"):
        call_command("revoke_api_key", "telegram-bot")


def test_an_expired_key_is_refused_with_the_reason():
    client, key = client_with_new_key("temp")
    APIKey.objects.filter(prefix=key.split(".")[0]).update(expiry_date="2000-01-01T00:00:00Z")

    response = client.get(LIST_URL)

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The API key has expired."


def test_a_revoked_keys_prefix_with_a_wrong_secret_learns_nothing():
    _, key = client_with_new_key("alice")
    call_command("revoke_api_key", "alice", stdout=StringIO())
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION=f"Api-Key {key.split('.')[0]}.{'x' * 32}")

    response = guesser.get(LIST_URL)

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The API key is not valid."


# --- the upload page -----------------------------------------------------------------------------


def test_result_addresses_are_random_and_the_stored_file_is_named_apart(one_face_jpeg):
    browser = Client()
    ids = [browser.post("/", {"image": photo_file(one_face_jpeg)}).url.split("/")[-1] for _ in range(2)]

    uploads = [Upload.objects.get(pk=upload_id) for upload_id in ids]

    assert [uuid.UUID(upload_id).version for upload_id in ids] == [4, 4]
    for upload in uploads:
        name = Path(upload.image.name).stem
        assert str(upload.pk) not in upload.image.name and upload.pk.hex not in upload.image.name
        assert len(name) >= 32  # secrets.token_urlsafe(24)


def test_another_browser_does_not_see_this_browsers_photos(one_face_jpeg):
    mine, theirs = Client(), Client()
    upload_id = mine.post("/", {"image": photo_file(one_face_jpeg)}).url.split("/")[-1]

    assert f"/r/{upload_id}" in mine.get("/").content.decode()
    page = theirs.get("/").content.decode()
    assert "Your photos" not in page and upload_id not in page


def test_unknown_ids_and_faces_are_not_found(one_face_jpeg, faces):
    browser = Client()
    upload_id = browser.post("/", {"image": photo_file(one_face_jpeg)}).url.split("/")[-1]
    finish_with_faces(Upload.objects.get(pk=upload_id), {})
    unknown = uuid.uuid4()

    for url in (f"/r/{unknown}", f"/r/{unknown}/status", f"/r/{unknown}/photo.jpg", f"/r/{unknown}/faces/0.png"):
        assert browser.get(url).status_code == 404, url
    assert browser.post(f"/r/{unknown}/delete").status_code == 404
    assert browser.get(f"/r/{upload_id}/faces/1.png").status_code == 404
    assert browser.get(f"/r/{upload_id}/faces/0.png").status_code == 200
    neighbour = upload_id[:-1] + ("1" if upload_id.endswith("0") else "0")
    assert browser.get(f"/r/{neighbour}/photo.jpg").status_code == 404


# --- the admin -----------------------------------------------------------------------------------


def test_a_signed_in_user_who_is_not_staff_is_sent_to_the_login(client, django_user_model, one_face_jpeg, faces):
    upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.WEB)
    [face] = finish_with_faces(upload, {})
    client.force_login(django_user_model.objects.create_user("visitor", password="not-used"))

    for url in (
        "/admin/",
        "/admin/uploads/upload/",
        f"/admin/uploads/upload/{upload.pk}/change/",
        f"/admin/uploads/upload/{upload.pk}/photo.jpg",
        f"/admin/predictions/faceestimate/{face.pk}/crop.png",
        "/admin/predictions/faceestimate/review/",
    ):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/admin/login/"), url


def test_admin_images_of_unknown_ids_are_not_found(admin_client):
    assert admin_client.get(f"/admin/uploads/upload/{uuid.uuid4()}/photo.jpg").status_code == 404
    assert admin_client.get("/admin/predictions/faceestimate/999999/crop.png").status_code == 404
