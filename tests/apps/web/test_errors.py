"""The site's own 404 and 500 pages, as people see them with DEBUG off (the tests' setting)."""

import uuid

import pytest
from django.test import RequestFactory

from apps.api.errors import server_error


@pytest.mark.django_db
@pytest.mark.parametrize("path", [f"/r/{uuid.uuid4()}", "/r/not-a-photo", "/no/such/page"])
def test_a_deleted_result_or_any_unknown_page_is_the_sites_404_with_a_way_home(client, settings, path):
    settings.RETENTION_DAYS = 12

    response = client.get(path)

    assert response.status_code == 404
    page = response.content.decode()
    assert "There is nothing at this address." in page
    assert "or after\n    12 days." in page
    assert '<a class="button primary" href="/">Analyse a photo</a>' in page
    assert 'href="/static/web/style.css"' in page  # the site's look
    assert "URLconf" not in page and "Page not found" not in page  # not Django's pages


def test_the_500_page_needs_no_database_nor_a_request_context():
    # Not marked django_db: a query here would fail the test. server_error renders without the request.
    response = server_error(RequestFactory().get("/r/anything"))

    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side." in page
    assert '<a class="button primary" href="/">Back to the start</a>' in page
    assert 'href="/static/web/style.css"' in page
    assert "deleted after" not in page  # the footer's retention period needs a context processor
