"""A reviewer in a real browser: a photo comes in through the page, the reviewer corrects its face in the admin."""

import re

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from playwright.sync_api import expect

from apps.predictions.models import EstimateReview, FaceEstimate
from tests.e2e.support import CROP_SIZE, LOADED_WIDTH
from tests.support import PIPELINE_TIMEOUT_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def reviewers():
    """The Reviewers group, made again by its data migration: the flush after each transactional test removes it."""
    call_command("migrate", "predictions", "0002", verbosity=0)
    call_command("migrate", "predictions", verbosity=0)
    return Group.objects.get(name="Reviewers")


def test_a_reviewer_corrects_a_face_in_one_step_and_sees_the_dashboard(
    web, desktop, one_face_jpeg, django_user_model, reviewers, tmp_path, screenshot
):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(one_face_jpeg)
    page = desktop
    page.goto(web.url + "/")
    page.set_input_files("#photo-input", photo)
    expect(page.locator(".face-box")).to_have_count(1, timeout=PIPELINE_TIMEOUT_SECONDS * 1000)
    reviewer = django_user_model.objects.create_user("rita", password=PASSWORD, is_staff=True)
    reviewer.groups.add(reviewers)

    page.goto(web.url + "/admin/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Review queue").click()
    card = page.locator(".review-card")
    expect(card).to_have_count(1)
    assert card.locator("img").evaluate(LOADED_WIDTH) == CROP_SIZE  # the aligned crop, as the model sees it
    screenshot(page, "queue")
    card.get_by_label("Age").fill("38")
    card.get_by_label("Gender").select_option("female")
    card.get_by_role("button", name="Save correction").click()

    expect(page.get_by_text(re.compile(r"^Face \d+ corrected to female, 38\.$"))).to_be_visible()
    expect(page.get_by_text("Nothing to review.")).to_be_visible()
    face = FaceEstimate.objects.get()
    review = EstimateReview.objects.get()
    assert (review.estimate, review.reviewer, review.age, review.gender) == (face, reviewer, 38, "female")

    page.goto(f"{web.url}/admin/predictions/faceestimate/dashboard/")
    expect(page.locator("#review-share")).to_contain_text("1 of 1 faces reviewed (100%)")
    expect(page.locator("#agreement tbody tr")).to_have_count(1)
    expect(page.locator("svg.bar-chart")).to_have_count(3)
    screenshot(page, "dashboard")

    page.goto(f"{web.url}/admin/uploads/upload/{face.upload_id}/change/")
    expect(page.locator(".photo .face-box")).to_have_count(1)
    assert page.locator(".photo img").evaluate(LOADED_WIDTH) == 512
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)  # a reviewer deletes nothing
    screenshot(page, "upload")
