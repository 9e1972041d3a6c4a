"""The Content-Security-Policy in a real browser: every page people and reviewers use works under it, with no
violation reported, while an injected inline script is still refused."""

import re

import pytest
from playwright.sync_api import expect

from apps.predictions.models import FaceEstimate
from tests.e2e.support import LOADED_WIDTH
from tests.support import PIPELINE_TIMEOUT_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"
RESULT_URL = re.compile(r"/r/[0-9a-f-]{36}$")

# Reported by the page itself (before any of its own scripts run) to the test, across navigations.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) =>
    window.reportViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} on ${location.pathname}`)
);
"""


@pytest.fixture
def watched(browser):
    """A desktop page with the CSP in force, and the violations its pages report (events and console)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    violations = []
    context.expose_function("reportViolation", lambda violation: violations.append(violation))
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield page, violations
    context.close()


def test_upload_result_admin_and_api_docs_work_under_the_policy(
    web, watched, one_face_jpeg, django_user_model, tmp_path, screenshot
):
    page, violations = watched
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(one_face_jpeg)
    page.context.grant_permissions(["camera"])

    response = page.goto(web.url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.get_by_role("button", name="Use the webcam").click()
    page.wait_for_function("() => document.getElementById('webcam-video').videoWidth > 0")
    page.get_by_role("button", name="Cancel").click()
    page.set_input_files("#photo-input", photo)
    page.wait_for_url(RESULT_URL)
    box = page.locator(".face-box")
    expect(box).to_have_count(1, timeout=PIPELINE_TIMEOUT_SECONDS * 1000)
    image = page.locator(".photo img")
    assert image.evaluate(LOADED_WIDTH) == 512
    drawn, shown = box.bounding_box(), image.bounding_box()
    assert 20 < drawn["width"] < shown["width"] / 2 and 20 < drawn["height"] < shown["height"] / 2, drawn
    assert shown["x"] < drawn["x"] and shown["y"] < drawn["y"], (drawn, shown)
    expect(page.locator(".photo .face-badge")).to_be_visible()
    screenshot(page, "result")
    upload_id = page.url.rsplit("/", 1)[1]

    django_user_model.objects.create_superuser("ada", password=PASSWORD)
    page.goto(web.url + "/admin/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Review queue")).to_be_visible()
    page.goto(f"{web.url}/admin/uploads/upload/{upload_id}/change/")
    expect(page.locator(".photo .face-box")).to_have_count(1)
    assert page.locator(".photo img").evaluate(LOADED_WIDTH) == 512
    page.goto(f"{web.url}/admin/predictions/faceestimate/review/")
    expect(page.locator(".review-card")).to_have_count(1)
    page.goto(f"{web.url}/admin/predictions/faceestimate/dashboard/")
    expect(page.locator("svg.bar-chart").first).to_be_visible()
    page.goto(f"{web.url}/admin/predictions/faceestimate/{FaceEstimate.objects.get(upload_id=upload_id).pk}/change/")
    expect(page.locator(".photo .face-box")).to_have_count(1)
    for changelist in ("predictions/faceestimate", "uploads/upload"):  # filters, search, date hierarchy
        page.goto(f"{web.url}/admin/{changelist}/")
        expect(page.locator("#result_list")).to_be_visible()
    screenshot(page, "admin")

    page.goto(web.url + "/api/docs/")
    operation = page.locator(".opblock").first
    expect(operation).to_be_visible()
    operation.locator(".opblock-summary").click()
    expect(page.get_by_role("button", name="Try it out").first).to_be_visible()
    page.get_by_role("button", name="Authorize").click()
    expect(page.locator(".modal-ux")).to_be_visible()
    screenshot(page, "api-docs")

    assert violations == []


def test_an_injected_inline_script_is_refused_and_reported(web, watched):
    page, violations = watched
    page.goto(web.url + "/")

    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.injected = true";
        document.body.append(script);
    }""")

    for _ in range(50):  # the report arrives asynchronously
        if violations:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.injected") is None
    assert any("script-src" in violation for violation in violations), violations
