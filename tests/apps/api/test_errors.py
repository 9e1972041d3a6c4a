"""Every answer under /api/ is JSON in the one error format, DEBUG on or off (issue 13)."""

import pytest
from rest_framework.test import APIClient

from tests.support import make_client

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def debug(request, settings):
    """With DEBUG on, Django answers an unmatched URL with its HTML page instead of handler404."""
    settings.DEBUG = request.param
    return request.param


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


@pytest.mark.parametrize(
    ("path", "meant"),
    [
        ("/api/v1/predictions/", "/api/v1/predictions"),  # a trailing slash on the collection
        (
            "/api/v1/predictions/3fa85f64-5717-4562-b3fc-2c963f66afa6/",
            "/api/v1/predictions/3fa85f64-5717-4562-b3fc-2c963f66afa6",
        ),
        ("/api/docs", "/api/docs/"),
    ],
)
def test_a_slash_too_many_or_too_few_is_a_json_404_naming_the_right_url(debug, path, meant):
    error = error_of(APIClient().get(path), 404)

    assert error["code"] == "not_found"
    assert error["details"] == {"path": path, "url": meant}
    assert meant in error["message"]


def test_a_malformed_prediction_id_is_a_json_404_that_says_what_an_id_is(debug):
    error = error_of(APIClient().get("/api/v1/predictions/not-a-uuid"), 404)

    assert "UUID" in error["message"]


@pytest.mark.parametrize("method", ["get", "post", "delete", "patch"])
def test_unknown_api_paths_are_json_404s_whatever_the_method(debug, method):
    client = APIClient(enforce_csrf_checks=True)  # a POST without a CSRF token still gets the JSON 404

    error = error_of(getattr(client, method)("/api/v2/anything"), 404)

    assert error["message"] == "There is nothing at this address."


def test_a_wrong_method_is_a_json_405(debug):
    client, _ = make_client("methods")

    assert error_of(client.put("/api/v1/predictions"), 405)["code"] == "method_not_allowed"
    assert error_of(client.post("/api/v1/predictions/3fa85f64-5717-4562-b3fc-2c963f66afa6"), 405)["code"] == (
        "method_not_allowed"
    )


def test_pages_outside_the_api_keep_their_html_404(settings):
    settings.DEBUG = False

    response = APIClient().get("/no/such/page")

    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
