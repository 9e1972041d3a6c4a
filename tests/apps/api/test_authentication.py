"""The three ways to send a key, and the refusals that say where a key goes."""

import pytest
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from apps.uploads.models import Upload
from tests.support import photo_file

LIST_URL = "/api/v1/predictions"


@pytest.fixture
def key(db) -> str:
    return APIKey.objects.create_key(name="integrator")[1]


@pytest.mark.parametrize(
    "headers",
    [
        lambda key: {"HTTP_AUTHORIZATION": f"Api-Key {key}"},
        lambda key: {"HTTP_AUTHORIZATION": f"Bearer {key}"},
        lambda key: {"HTTP_AUTHORIZATION": f"bearer  {key} "},
        lambda key: {"HTTP_X_API_KEY": key},
        lambda key: {"HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_X_API_KEY": key},
    ],
    ids=["api-key", "bearer", "bearer-lowercase-spaces", "x-api-key", "both-the-same"],
)
def test_a_key_is_taken_from_any_of_the_headers(key, headers, one_face_jpeg):
    client = APIClient()
    client.credentials(**headers(key))

    assert client.get(LIST_URL).status_code == 200
    response = client.post(LIST_URL, {"image": photo_file(one_face_jpeg)}, format="multipart")
    assert response.status_code == 202
    assert Upload.objects.get(pk=response.json()["id"]).owner.name == "integrator"


@pytest.mark.parametrize("parameter", ["api_key", "key", "access_token"])
def test_a_key_in_the_query_string_is_refused_with_where_to_put_it(key, parameter, one_face_jpeg):
    response = APIClient().post(f"{LIST_URL}?{parameter}={key}", {"image": photo_file(one_face_jpeg)})

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "authentication_failed"
    assert "not accepted in the URL" in error["message"]
    assert "Authorization: Bearer <key>" in error["message"] and "X-Api-Key: <key>" in error["message"]
    assert not Upload.objects.exists()


def test_a_key_in_the_query_string_is_refused_even_with_a_good_header(key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)

    assert client.get(f"{LIST_URL}?api_key={key}").status_code == 401


def test_two_different_keys_are_refused(key, db):
    other = APIKey.objects.create_key(name="other")[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_X_API_KEY=other)

    response = client.get(LIST_URL)

    assert response.status_code == 401
    assert "Two different API keys" in response.json()["error"]["message"]


@pytest.mark.parametrize("headers", [{"HTTP_X_API_KEY": "nope.nothing"}, {"HTTP_AUTHORIZATION": "Bearer nope.x"}])
def test_a_bad_key_in_any_header_is_not_valid(db, headers):
    client = APIClient()
    client.credentials(**headers)

    response = client.get(LIST_URL)

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The API key is not valid."


def test_another_authorization_scheme_is_no_key(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")

    response = client.get(LIST_URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
