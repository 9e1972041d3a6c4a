"""The upload page in-process, without a worker: uploads stay pending unless a test sets the results itself."""

import io
import re
import uuid
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone
from PIL import Image

from apps.faces.mongo import faces_collection
from apps.predictions.models import FaceEstimate
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from apps.web.selectors import browser_of
from tests.support import encode, finish_with_faces, photo_file, stored_files

pytestmark = pytest.mark.django_db

NOT_AN_IMAGE = "The file is not an image in a supported format."


def upload_photo(client, data: bytes, name: str = "photo.jpg", **headers):
    return client.post("/", {"image": photo_file(data, name)}, **headers)


def uploaded(client, data: bytes) -> Upload:
    response = upload_photo(client, data)
    assert response.status_code == 302, response.content
    return Upload.objects.get(pk=response.url.rsplit("/", 1)[1])


def result_url(upload: Upload) -> str:
    return f"/r/{upload.pk}"


def test_page_states_formats_and_size_limit(client, settings):
    settings.MAX_UPLOAD_BYTES = 15 * 1024 * 1024

    page = client.get("/").content.decode()

    assert "JPEG, PNG, WebP or HEIC" in page
    assert "up to 15.0\xa0MB" in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert 'accept="image/*,.heic,.heif"' in page


def test_upload_goes_to_a_private_result_page_remembered_by_this_browser(client, one_face_jpeg):
    upload = uploaded(client, one_face_jpeg)

    assert (upload.channel, upload.owner, upload.status) == (Upload.Channel.WEB, None, Upload.Status.PENDING)
    assert uuid.UUID(str(upload.pk)).version == 4  # random: the address cannot be guessed
    assert upload.browser == browser_of(client.session) != ""  # a keyed hash, not the session key
    assert client.session.session_key not in upload.browser
    assert result_url(upload) in client.get("/").content.decode()  # "Your photos"
    page = client.get(result_url(upload))
    assert page.status_code == 200
    assert page["X-Robots-Tag"] == "noindex"
    assert "no-store" in page["Cache-Control"]


def test_the_page_script_gets_json(client, one_face_jpeg):
    response = upload_photo(client, one_face_jpeg, HTTP_ACCEPT="application/json")

    assert response.status_code == 201
    assert re.fullmatch(r"/r/[0-9a-f-]{36}", response.json()["url"])


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"shopping list: milk, eggs", 415, NOT_AN_IMAGE),
        (b"", 400, "The file is empty."),
    ],
)
def test_refusals_are_said_in_words_and_store_nothing(client, data, status, message):
    files_before = stored_files()

    page = upload_photo(client, data, "notes.txt")
    as_json = upload_photo(client, data, "notes.txt", HTTP_ACCEPT="application/json")

    assert page.status_code == as_json.status_code == status
    assert message in page.content.decode()
    assert as_json.json() == {"error": message}
    assert not Upload.objects.exists()
    assert stored_files() == files_before


def test_no_file_chosen(client):
    response = client.post("/", {})

    assert response.status_code == 400
    assert "Choose a photo first." in response.content.decode()


def test_too_large_a_file_is_refused_before_it_is_read(client, one_face_jpeg, settings):
    settings.MAX_UPLOAD_BYTES = 1000

    response = upload_photo(client, one_face_jpeg, HTTP_ACCEPT="application/json")

    assert response.status_code == 413
    assert response.json() == {"error": "The file is larger than 1000\xa0bytes."}


def test_forms_need_the_csrf_token(one_face_jpeg):
    browser = Client(enforce_csrf_checks=True)

    assert upload_photo(browser, one_face_jpeg).status_code == 403
    page = browser.get("/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    response = browser.post("/", {"image": photo_file(one_face_jpeg), "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    upload = Upload.objects.get()
    assert browser.post(f"{result_url(upload)}/delete").status_code == 403
    assert Upload.objects.filter(pk=upload.pk).exists()


@pytest.mark.parametrize(
    ("status", "timings", "stage", "message"),
    [
        (Upload.Status.PENDING, {}, "queued", "Waiting for a free worker…"),
        (Upload.Status.PROCESSING, {"queue_ms": 5.0}, "finding_faces", "Finding faces…"),
        (Upload.Status.PROCESSING, {"detection_ms": 80.0}, "predicting", "Estimating age and gender…"),
    ],
)
def test_status_while_the_photo_is_analysed(client, one_face_jpeg, status, timings, stage, message):
    upload = uploaded(client, one_face_jpeg)
    Upload.objects.filter(pk=upload.pk).update(status=status, timings=timings)

    assert client.get(f"{result_url(upload)}/status").json() == {"stage": stage, "message": message, "finished": False}
    page = client.get(result_url(upload)).content.decode()
    assert message in page
    assert 'id="steps"' in page


def test_result_shows_a_numbered_box_per_face_and_a_card_with_its_number_estimates_and_crop(
    client, one_face_jpeg, faces
):
    upload = uploaded(client, one_face_jpeg)
    first, second = finish_with_faces(upload, {}, {"box_x": -10, "box_y": 0, "gender_label": "male", "age_value": 8.6})

    assert client.get(f"{result_url(upload)}/status").json()["finished"] is True
    page = client.get(result_url(upload)).content.decode()
    assert "2 faces found" in page
    assert "Female: 87% sure." in page
    assert "80% likely between\n          33 and 50" in page
    # In percent of the 512 x 512 photo; a box past the edge is clipped to it. Its badge starts in its corner.
    for box in ('x="35.547%" y="12.500%" width="16.211%" height="20.898%"', 'x="0.000%" y="0.000%" width="14.258%"'):
        assert box in page
    assert re.findall(r'class="face-badge-slot" x="([^"]+)" y="([^"]+)"', page) == [
        ("35.547%", "12.500%"),
        ("0.000%", "0.000%"),
    ]
    badges = re.findall(r'class="face-badge" data-face-index="(\d)">(\d)</span>', page)
    cards = re.findall(
        r'<li class="face" data-face-index="(\d)">.*?class="face-number".*?>(\d)</button>\s*<strong>(.*?)<', page, re.S
    )
    assert badges == [("0", "1"), ("1", "2")]
    assert cards == [("0", "1", "F, 41 (33-50)"), ("1", "2", "M, 9 (33-50)")]  # the label is on the card only
    assert page.count("F, 41 (33-50)") == 1
    for face in (first, second):
        crop = client.get(f"{result_url(upload)}/faces/{face.face_index}.png")
        assert crop["Content-Type"] == "image/png"
        stored = faces_collection().find_one({"upload_id": str(upload.pk), "face_index": face.face_index})
        assert crop.content == stored["crop_png"]
    assert client.get(f"{result_url(upload)}/faces/2.png").status_code == 404


def test_no_face_found_is_said_plainly(client, no_face_jpeg):
    upload = uploaded(client, no_face_jpeg)
    finish_with_faces(upload)

    page = client.get(result_url(upload)).content.decode()

    assert "No face found in this photo." in page
    assert 'class="face-box"' not in page


def test_a_failed_analysis_says_why(client, one_face_jpeg):
    upload = uploaded(client, one_face_jpeg)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.FAILED, failure_reason="This file is odd.")

    assert "This file is odd." in client.get(result_url(upload)).content.decode()


def test_photo_is_served_upright_whatever_its_exif_orientation(client):
    # Stored 300 x 200; EXIF orientation 6 says "rotate 90 degrees clockwise to view".
    landscape = encode(np.full((200, 300, 3), 128, np.uint8), exif=_exif_orientation(6))
    upload = uploaded(client, landscape)
    assert (upload.width, upload.height) == (200, 300)

    response = client.get(f"{result_url(upload)}/photo.jpg")

    assert response["Content-Type"] == "image/jpeg"
    assert "private" in response["Cache-Control"]
    shown = Image.open(io.BytesIO(response.content))
    assert shown.size == (200, 300)
    assert not shown.getexif().get(0x0112)  # no orientation left for the browser to apply again


def test_heic_is_shown_as_jpeg(client, one_face_jpeg):
    from pillow_heif import from_pillow

    heic = io.BytesIO()
    from_pillow(Image.open(io.BytesIO(one_face_jpeg))).save(heic, format="HEIF", quality=80)
    upload = uploaded(client, heic.getvalue())

    response = client.get(f"{result_url(upload)}/photo.jpg")

    assert Image.open(io.BytesIO(response.content)).format == "JPEG"


def test_big_photos_are_shown_smaller(client):
    upload = uploaded(client, encode(np.full((1000, 3000, 3), 128, np.uint8)))

    shown = Image.open(io.BytesIO(client.get(f"{result_url(upload)}/photo.jpg").content))

    assert shown.size == (2048, 683)


def test_only_page_uploads_are_reachable_from_the_page(client, one_face_jpeg, faces):
    from django.core.files.uploadedfile import SimpleUploadedFile

    api_upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.API)
    finish_with_faces(api_upload, {})

    for suffix in ("", "/status", "/photo.jpg", "/faces/0.png"):
        assert client.get(f"{result_url(api_upload)}{suffix}").status_code == 404
    assert client.get(f"/r/{uuid.uuid4()}").status_code == 404


def test_only_the_browser_that_sent_a_photo_can_delete_it(client, one_face_jpeg, faces):
    upload = uploaded(client, one_face_jpeg)
    finish_with_faces(upload, {})
    stranger = Client()

    assert "Delete this photo" not in stranger.get(result_url(upload)).content.decode()
    refused = stranger.post(f"{result_url(upload)}/delete")
    assert refused.status_code == 403
    assert "Only the browser that sent this photo can delete it." in refused.content.decode()
    assert Upload.objects.filter(pk=upload.pk).exists()

    assert "Delete this photo" in client.get(result_url(upload)).content.decode()
    upload_path = Path(upload.image.path)
    response = client.post(f"{result_url(upload)}/delete", follow=True)

    assert response.redirect_chain == [("/", 302)]
    assert "The photo, its faces and their results were deleted." in response.content.decode()
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert not FaceEstimate.objects.filter(upload_id=upload.pk).exists()
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 0
    assert upload_path not in stored_files()
    assert "Your photos" not in client.get("/").content.decode()
    assert client.get(result_url(upload)).status_code == 404
    assert client.get(f"{result_url(upload)}/delete").status_code == 405


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


@pytest.mark.django_db
def test_every_page_states_the_retention_period(settings):
    settings.RETENTION_DAYS = 12

    page = Client().get("/").content.decode()

    assert "Photos are deleted after 12 days" in page
    # True of the photos a reviewer keeps too.
    footer = " ".join(page.split("<footer>")[1].split())
    assert "or sooner when you delete them, unless a reviewer keeps one to improve the model." in footer


def test_the_favicon_is_linked_and_answered_at_favicon_ico(client):
    page = client.get("/").content.decode()
    response = client.get("/favicon.ico")

    assert '<link rel="icon" href="/static/web/favicon.svg" type="image/svg+xml">' in page
    assert (response.status_code, response["Location"]) == (302, "/static/web/favicon.svg")
    assert "max-age=86400" in response["Cache-Control"]
    icon = ElementTree.parse(finders.find("web/favicon.svg")).getroot()
    assert (icon.tag, icon.get("viewBox")) == ("{http://www.w3.org/2000/svg}svg", "0 0 32 32")


def test_your_photos_show_a_thumbnail_the_faces_found_and_when(client, one_face_jpeg, no_face_jpeg, faces):
    group, empty, failed, waiting = (uploaded(client, data) for data in [one_face_jpeg, no_face_jpeg] * 2)
    finish_with_faces(group, {}, {})
    finish_with_faces(empty)
    Upload.objects.filter(pk=failed.pk).update(status=Upload.Status.FAILED)
    Upload.objects.filter(pk=group.pk).update(created_at=timezone.now() - timedelta(hours=2, minutes=5))

    page = " ".join(client.get("/").content.decode().split())

    listed = re.findall(
        r'<a class="recent-photo" href="/r/([0-9a-f-]+)"> <img class="thumbnail" src="/r/\1/thumbnail', page
    )
    assert listed == [str(u.pk) for u in (waiting, failed, empty, group)]  # newest first
    items = re.findall(r'<li><a class="recent-photo".*?</li>', page)
    assert [" ".join(re.sub(r"<[^>]+>", "", item).split()) for item in items] == [
        "Being analysed… just now",
        "Could not be analysed just now",
        "No faces just now",
        "2 faces 2 hours ago",
    ]
    thumbnail = client.get(f"{result_url(group)}/thumbnail.jpg")
    assert (thumbnail.status_code, thumbnail["Content-Type"]) == (200, "image/jpeg")
    assert Image.open(io.BytesIO(thumbnail.content)).size == (128, 128)  # from 512 x 512
    assert len(thumbnail.content) < 10_000
    assert "private" in thumbnail["Cache-Control"] and "max-age=86400" in thumbnail["Cache-Control"]


def test_only_the_browser_that_sent_a_photo_lists_it_and_gets_its_thumbnail(client, one_face_jpeg):
    upload = uploaded(client, one_face_jpeg)
    stranger = Client()
    stranger.get("/")

    assert "Your photos" not in stranger.get("/").content.decode()
    assert stranger.get(f"{result_url(upload)}/thumbnail.jpg").status_code == 403
    assert client.get(f"{result_url(upload)}/thumbnail.jpg").status_code == 200
