"""The result page follows the analysis through its event stream (server-sent events), in a real browser
against gunicorn's uvicorn workers and a real worker; where the stream is refused, it polls as before."""

import re

import pytest
from playwright.sync_api import expect

from tests.support import PIPELINE_TIMEOUT_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)

RESULT_URL = re.compile(r"/r/[0-9a-f-]{36}$")
ANALYSIS_TIMEOUT_MS = PIPELINE_TIMEOUT_SECONDS * 1000


def record_requests(page) -> tuple[list[str], dict[str, str]]:
    """Paths the page asks for, and the content type each answered with."""
    paths, content_types = [], {}
    page.on("request", lambda request: paths.append(re.sub(r"^https?://[^/]+", "", request.url)))
    page.on(
        "response",
        lambda response: content_types.__setitem__(
            re.sub(r"^https?://[^/]+", "", response.url), response.headers.get("content-type", "")
        ),
    )
    return paths, content_types


def first_load_unfinished(page) -> list[str]:
    """Serve the first load of the result page as if the analysis were still running.

    A warm worker can finish before the browser arrives, and a page rendered finished follows
    nothing: without this, which path the test exercised would depend on the machine's speed.
    After the page's script sees the result finished (by either path) it reloads, unaltered.
    """
    loads = []

    def handle(route):
        response = route.fetch()
        body = response.text()
        if not loads:
            body = re.sub(r'data-stage="(done|failed)"', 'data-stage="detecting"', body, count=1)
        loads.append(route.request.url)
        route.fulfill(response=response, body=body)

    page.route(RESULT_URL, handle)
    return loads


def wait_for_reload(page, loads: list[str]) -> None:
    """Until the result page was loaded a second time (its script reloads it once it sees the end)."""
    for _ in range(PIPELINE_TIMEOUT_SECONDS * 10):
        if len(loads) >= 2:
            return
        page.wait_for_timeout(100)


def send_photo(page, web, photo) -> None:
    page.goto(web.url + "/")
    page.set_input_files("#photo-input", photo)
    page.wait_for_url(RESULT_URL)


def test_the_page_gets_its_result_through_the_event_stream(web, desktop, one_face_jpeg, faces, tmp_path, screenshot):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(one_face_jpeg)
    paths, content_types = record_requests(desktop)
    loads = first_load_unfinished(desktop)

    send_photo(desktop, web, photo)

    wait_for_reload(desktop, loads)
    expect(desktop.locator(".face-box")).to_have_count(1, timeout=ANALYSIS_TIMEOUT_MS)
    expect(desktop.get_by_role("heading", name="1 face found")).to_be_visible()
    screenshot(desktop, "result")
    result = desktop.url.replace(web.url, "")
    assert f"{result}/events" in paths
    assert content_types[f"{result}/events"].startswith("text/event-stream")
    assert f"{result}/status" not in paths  # no polling
    assert len(loads) >= 2  # the page reloaded itself once the stream said the analysis was over


def test_without_the_event_stream_the_page_polls_for_its_result(web, desktop, one_face_jpeg, faces, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(one_face_jpeg)
    desktop.route(re.compile(r"/r/[0-9a-f-]{36}/events$"), lambda route: route.fulfill(status=503, body="down"))
    paths, _ = record_requests(desktop)
    loads = first_load_unfinished(desktop)

    send_photo(desktop, web, photo)

    wait_for_reload(desktop, loads)
    expect(desktop.locator(".face-box")).to_have_count(1, timeout=ANALYSIS_TIMEOUT_MS)
    result = desktop.url.replace(web.url, "")
    assert f"{result}/status" in paths
    assert len(loads) >= 2  # the page reloaded itself once polling said the analysis was over
