"""The upload page in a real browser, against gunicorn and a real worker: upload, see the faces, delete."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.predictions.models import FaceEstimate
from apps.uploads.models import Upload
from tests.e2e.support import CROP_SIZE, LOADED_WIDTH
from tests.support import PIPELINE_TIMEOUT_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)

NOT_AN_IMAGE = "The file is not an image in a supported format."
RESULT_URL = re.compile(r"/r/[0-9a-f-]{36}$")
# Where MTCNN finds the astronaut's face in skimage.data.astronaut() (512 x 512).
ASTRONAUT_FACE_CENTER = (224, 118)
ANALYSIS_TIMEOUT_MS = PIPELINE_TIMEOUT_SECONDS * 1000


def upload_id(page) -> str:
    return page.url.rsplit("/", 1)[1]


def test_upload_a_photo_on_a_phone_see_its_face_and_delete_it(web, phone, one_face_jpeg, faces, tmp_path, screenshot):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(one_face_jpeg)
    page = phone
    page.goto(web.url + "/")
    expect(page.get_by_text(re.compile(r"up to 15\.0\sMB"))).to_be_visible()
    screenshot(page, "upload")

    page.set_input_files("#photo-input", photo)

    page.wait_for_url(RESULT_URL)
    # The module's fresh worker loads TensorFlow and the models first: the page shows the analysis under way.
    expect(page.locator("#stage-message")).to_have_text(
        re.compile("Waiting for a free worker|Finding faces|Estimating")
    )
    screenshot(page, "progress")
    box = page.locator(".face-box")
    expect(box).to_have_count(1, timeout=ANALYSIS_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="1 face found")).to_be_visible()
    expect(page.locator(".photo .face-badge")).to_have_text("1")
    expect(page.locator(".face-label-text strong")).to_have_text(re.compile(r"^[FM], \d+ \(\d+-\d+\)$"))
    expect(page.get_by_text(re.compile(r"^(Female|Male): \d+% sure\.$"))).to_be_visible()
    image = page.locator(".photo img")
    assert image.evaluate(LOADED_WIDTH) == 512
    assert page.locator(".face-crop").evaluate(LOADED_WIDTH) == CROP_SIZE  # the aligned crop, as the model sees it
    drawn, shown = box.bounding_box(), image.bounding_box()
    center = (
        (drawn["x"] + drawn["width"] / 2 - shown["x"]) * 512 / shown["width"],
        (drawn["y"] + drawn["height"] / 2 - shown["y"]) * 512 / shown["height"],
    )
    assert all(abs(a - b) < 30 for a, b in zip(center, ASTRONAUT_FACE_CENTER, strict=True)), center
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits the phone
    screenshot(page, "result")
    upload = Upload.objects.get(pk=upload_id(page))
    path = Path(upload.image.path)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this photo").click()

    page.wait_for_url(web.url + "/")
    expect(page.get_by_text("The photo, its faces and their results were deleted.")).to_be_visible()
    screenshot(page, "deleted")
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert not FaceEstimate.objects.filter(upload_id=upload.pk).exists()
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 0
    assert not path.exists()
    # Its address now answers the site's own 404 (DEBUG off, as make run has it), with a way back.
    assert page.goto(f"{web.url}/r/{upload.pk}").status == 404
    expect(page.get_by_role("heading", name="There is nothing at this address.")).to_be_visible()
    screenshot(page, "gone")
    page.get_by_role("link", name="Analyse a photo").click()
    page.wait_for_url(web.url + "/")


def test_a_non_image_is_refused_in_words(web, desktop, tmp_path, screenshot):
    notes = tmp_path / "notes.txt"
    notes.write_text("milk, eggs, bread")
    page = desktop
    page.goto(web.url + "/")

    page.set_input_files("#photo-input", notes)

    expect(page.get_by_role("alert")).to_have_text(NOT_AN_IMAGE)
    assert page.url == web.url + "/"
    screenshot(page, "refused")
    assert not Upload.objects.exists()


@pytest.mark.parametrize("gesture", ["drop", "paste"])
def test_dropped_or_pasted_files_are_sent_too(web, desktop, gesture):
    page = desktop
    page.goto(web.url + "/")

    # What the browser hands the page when a file is dropped on it or pasted into it.
    page.evaluate(
        """gesture => {
            const data = new DataTransfer();
            data.items.add(new File(["not a photo"], "notes.txt", {type: "text/plain"}));
            data.items.add(new File(["not a photo either"], "clip.png", {type: "image/png"}));
            const event = gesture === "drop"
                ? new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true})
                : new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true});
            document.getElementById("drop-zone").dispatchEvent(event);
        }""",
        gesture,
    )

    # The server read the file: the first one dropped, the image one pasted.
    expect(page.get_by_role("alert")).to_have_text(NOT_AN_IMAGE)


def test_a_webcam_photo_without_a_face_says_so_plainly(web, desktop, screenshot):
    page = desktop
    page.context.grant_permissions(["camera"])
    page.goto(web.url + "/")

    page.get_by_role("button", name="Use the webcam").click()
    expect(page.locator("#webcam-video")).to_be_visible()
    # A function, not an expression: the CSP forbids evaluating strings in the page.
    page.wait_for_function("() => document.getElementById('webcam-video').videoWidth > 0")
    page.get_by_role("button", name="Take the photo").click()

    page.wait_for_url(RESULT_URL)
    expect(page.get_by_role("heading", name="No face found in this photo.")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    screenshot(page, "no-face")
    upload = Upload.objects.get(pk=upload_id(page))
    assert (upload.channel, upload.status, upload.faces.count()) == ("web", "done", 0)


def test_the_favicon_is_where_browsers_look_for_it(web, desktop):
    page = desktop
    page.goto(web.url + "/")
    linked = page.request.get(web.url + page.locator("link[rel=icon]").get_attribute("href"))
    at_the_root = page.request.get(web.url + "/favicon.ico")  # pages without the link (the admin) make browsers ask

    assert (linked.status, linked.headers["content-type"]) == (200, "image/svg+xml")
    assert (at_the_root.url, at_the_root.body()) == (linked.url, linked.body())
