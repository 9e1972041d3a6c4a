"""Every file of the hostile-input corpus (tests/corpus.py) through the API, the upload page and the
Telegram bot, with one real worker for the module: each ends with its result or a specific refusal,
nothing answers 500 or stays pending, the worker survives, and good photos sent before, in between and
after are analysed as usual.

With ``HOSTILE_INPUT_TABLE=<file>`` the module writes what it observed as the markdown table of
docs/hardening/input.md.
"""

import io
import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from apps.telegram.models import TelegramUpdate
from apps.uploads.models import Upload
from tests import corpus
from tests.apps.telegram.support import SECRET, TOKEN, chat_of, document_update, photo_update, post_update
from tests.support import PIPELINE_TIMEOUT_SECONDS, make_client, photo_file, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = "/api/v1/predictions"
MAX_FACES = 20  # the module's worker analyses at most this many faces a photo (the crowd has 32)
# HTTP status of each refusal code (the rejections' own, apps/uploads/images.py); the page answers with the same.
REFUSAL_STATUS = {
    "empty_file": 400,
    "unsupported_image": 415,
    "damaged_image": 400,
    "image_too_large": 413,
    "file_too_large": 413,
    "image_too_small": 400,
}
# Checked by DRF's file field before the uploads app sees the file: its own code, same status.
API_CODE = {"empty_file": "invalid"}
FACE_TOLERANCE = 30  # px between the expected and the found face centre (as tests/integration/test_pipeline.py)
OBSERVED: dict[str, dict] = {}  # case -> channel -> what happened, for the docs table
CANARY = "canary: the astronaut JPEG, sent before, amid and after the corpus"


@pytest.fixture(scope="module")
def worker_env(fake_api):
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE": fake_api.url,
        "TELEGRAM_RATE_PER_CHAT": "10000/minute",
        "MAX_FACES_PER_PHOTO": str(MAX_FACES),
    }


@pytest.fixture(autouse=True)
def _settings(settings, fake_api):
    settings.TELEGRAM_BOT_TOKEN = TOKEN
    settings.TELEGRAM_WEBHOOK_SECRET = SECRET
    settings.TELEGRAM_API_BASE = fake_api.url
    settings.MAX_FACES_PER_PHOTO = MAX_FACES
    fake_api.reset()


@pytest.fixture(scope="module")
def cases() -> list[corpus.Case]:
    from django.conf import settings

    return corpus.corpus(
        max_upload_bytes=settings.MAX_UPLOAD_BYTES,
        max_image_pixels=settings.MAX_IMAGE_PIXELS,
        min_image_side=settings.MIN_IMAGE_SIDE,
    )


@pytest.fixture(scope="module", autouse=True)
def _table(cases):
    """After the module: the docs table, when HOSTILE_INPUT_TABLE names a file for it."""
    yield
    path = os.environ.get("HOSTILE_INPUT_TABLE")
    if not path:
        return
    channels = {
        "api": "API",
        "page JSON": "page (JSON)",
        "page form": "page (form)",
        "page": "page",
        "telegram": "Telegram",
    }
    canaries = OBSERVED.pop(CANARY, {})
    OBSERVED[CANARY] = {
        channel: f"{len(seconds)} done, 1 face each, ≤ {max(seconds):.1f} s" for channel, seconds in canaries.items()
    }
    lines = ["| input or fault | expected | observed |", "|---|---|---|"]
    rows = [(case.description, case.expected, OBSERVED.get(case.name, {})) for case in cases]
    rows.append((CANARY, "done, 1 face, like any photo", OBSERVED[CANARY]))
    for description, expected, seen in rows:
        observed = "; ".join(f"{label}: {seen[key]}" for key, label in channels.items() if key in seen)
        lines.append(f"| {description} | {expected} | {observed} |")
    Path(path).write_text("\n".join(lines) + "\n")


def observe(case_name: str, channel: str, text: str) -> None:
    OBSERVED.setdefault(case_name, {})[channel] = text


def center(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def assert_face_at(box: dict, expected: tuple[float, float], case_name: str) -> None:
    found = center(box)
    assert all(abs(a - b) <= FACE_TOLERANCE for a, b in zip(found, expected, strict=True)), (case_name, found)


def pipeline_seconds(upload: Upload) -> float:
    """Decoding, detection and estimation, without the time spent queued behind the other files."""
    return sum(upload.timings.get(key, 0) for key in ("decode_ms", "detection_ms", "estimation_ms")) / 1000


def assert_stored_copy_is_clean(upload: Upload, case: corpus.Case) -> None:
    data = Path(upload.image.path).read_bytes()
    stored = Image.open(io.BytesIO(data))
    assert stored.format in ("JPEG", "PNG") and stored.size == case.size, case.name
    assert dict(stored.getexif()) == {}, case.name
    assert not {"exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"} & set(stored.info), case.name
    for secret in (b"Exif", b"CorpusCam", corpus.SECRET_COMMENT, b"corpus-secret-xmp"):
        assert secret not in data, case.name


def assert_result(upload: Upload, case: corpus.Case) -> str:
    """Check a finished upload against its case; returns what was observed, for the table."""
    assert upload.status == Upload.Status.DONE, (case.name, upload.failure_reason)
    faces = list(upload.faces.order_by("face_index"))
    assert (upload.width, upload.height) == case.size, case.name
    if case.min_faces:
        assert upload.faces_found >= case.min_faces, case.name
        assert len(faces) == min(upload.faces_found, MAX_FACES), case.name
    else:
        assert upload.faces_found == len(faces) == case.faces, (case.name, upload.faces_found)
        face = faces[0]
        assert_face_at(
            {"x": face.box_x, "y": face.box_y, "width": face.box_width, "height": face.box_height},
            case.face_center,
            case.name,
        )
    assert_stored_copy_is_clean(upload, case)
    return f"done, {upload.faces_found} found / {len(faces)} analysed, {pipeline_seconds(upload):.1f} s"


def assert_nothing_unfinished() -> None:
    unfinished = Upload.objects.filter(status__in=[Upload.Status.PENDING, Upload.Status.PROCESSING])
    assert list(unfinished.values_list("id", "status")) == []


def assert_worker_unharmed(worker) -> None:
    """The worker still runs, and no pool process of it died on a file (Celery would have replaced it)."""
    assert worker.process.poll() is None
    log = worker.log_file.read_text(errors="replace")
    assert "faces_detect" in log  # the log does cover the corpus
    for sign_of_a_crash in ("WorkerLostError", "exited with 'signal", "MemoryError"):
        assert sign_of_a_crash not in log


def assert_canaries_done(upload_ids: list, channel: str) -> None:
    """The good photos sent around the corpus: done, with the astronaut's face where it is."""
    for upload_id in upload_ids:
        upload = wait_until_finished(upload_id)
        assert upload.status == Upload.Status.DONE, upload.failure_reason
        [face] = upload.faces.all()
        OBSERVED.setdefault(CANARY, {}).setdefault(channel, []).append(pipeline_seconds(upload))
        assert_face_at(
            {"x": face.box_x, "y": face.box_y, "width": face.box_width, "height": face.box_height},
            corpus.ASTRONAUT_FACE_CENTER,
            "canary",
        )


def test_api(worker, cases, one_face_jpeg):
    api = make_client("hostile")[0]

    def post(data: bytes, name: str = "photo.jpg"):
        started = time.perf_counter()
        response = api.post(LIST_URL, {"image": photo_file(data, name)}, format="multipart")
        return response, time.perf_counter() - started

    canaries, accepted = [], {}
    canaries.append(post(one_face_jpeg)[0].json()["id"])
    for index, case in enumerate(cases):
        response, seconds = post(case.data, f"{case.name}.jpg")
        assert response.status_code != 500, case.name
        if case.accepted:
            assert response.status_code == 202, (case.name, response.content)
            accepted[case.name] = response.json()["id"]
        else:
            error = response.json()["error"]
            code = API_CODE.get(case.code, case.code)
            assert (response.status_code, error["code"]) == (REFUSAL_STATUS[case.code], code), case.name
            assert case.words in json.dumps(error), (case.name, error)
            observe(case.name, "api", f"{response.status_code} `{code}` ({seconds * 1000:.0f} ms)")
        if index == len(cases) // 2:
            canaries.append(post(one_face_jpeg)[0].json()["id"])
    canaries.append(post(one_face_jpeg)[0].json()["id"])

    by_name = {case.name: case for case in cases}
    for name, upload_id in accepted.items():
        upload = wait_until_finished(upload_id)
        observe(name, "api", assert_result(upload, by_name[name]))
        shown = api.get(f"{LIST_URL}/{upload_id}").json()
        assert (shown["faces_found"], len(shown["faces"])) == (upload.faces_found, upload.faces.count())
        if upload.faces_found > MAX_FACES:
            assert (
                shown["faces_notice"]
                == f"Only the {MAX_FACES} largest of the {upload.faces_found} faces found were analysed."
            )
        else:
            assert shown["faces_notice"] == ""
    assert_canaries_done(canaries, "api")
    assert_nothing_unfinished()
    assert_worker_unharmed(worker)


def test_page(worker, client, cases, one_face_jpeg):
    def post(data: bytes, name: str, as_json: bool):
        headers = {"HTTP_ACCEPT": "application/json"} if as_json else {}
        started = time.perf_counter()
        response = client.post("/", {"image": photo_file(data, name)}, **headers)
        return response, time.perf_counter() - started

    def upload_id_of(response, as_json: bool) -> str:
        url = response.json()["url"] if as_json else response.url
        return url.rstrip("/").rsplit("/", 1)[1]

    canaries, accepted = [], []
    canaries.append(upload_id_of(post(one_face_jpeg, "a.jpg", True)[0], True))
    for index, case in enumerate(cases):
        for as_json, channel in ((True, "page JSON"), (False, "page form")):
            response, seconds = post(case.data, f"{case.name}.jpg", as_json)
            assert response.status_code != 500, case.name
            if case.accepted:
                assert response.status_code == (201 if as_json else 302), (case.name, response.content)
                accepted.append((case, channel, upload_id_of(response, as_json)))
                continue
            assert response.status_code == REFUSAL_STATUS[case.code], (case.name, channel)
            message = response.json()["error"] if as_json else response.content.decode()
            assert case.words in message, (case.name, channel)
            shown = f"“{message}”" if as_json else "the page with the message"
            observe(case.name, channel, f"{response.status_code} {shown} ({seconds * 1000:.0f} ms)")
        if index == len(cases) // 2:
            canaries.append(upload_id_of(post(one_face_jpeg, "b.jpg", False)[0], False))
    canaries.append(upload_id_of(post(one_face_jpeg, "c.jpg", True)[0], True))

    for case, channel, upload_id in accepted:
        upload = wait_until_finished(upload_id)
        observe(case.name, channel, assert_result(upload, case))
        page = client.get(f"/r/{upload_id}")
        assert page.status_code == 200
        limited = 'id="faces-limited"' in page.content.decode()
        assert limited == (upload.faces_found > MAX_FACES), case.name
        photo = client.get(f"/r/{upload_id}/photo.jpg")
        assert (photo.status_code, photo["Content-Type"]) == (200, "image/jpeg"), case.name
    assert_canaries_done(canaries, "page")
    assert_nothing_unfinished()
    assert_worker_unharmed(worker)


def test_telegram(worker, client, fake_api, cases, one_face_jpeg):
    def send(update: dict) -> dict:
        assert post_update(client, update).status_code == 200
        return update

    def canary() -> dict:
        return send(photo_update(fake_api.add_file(one_face_jpeg), size=len(one_face_jpeg)))

    canaries, updates = [canary()], []
    for index, case in enumerate(cases):
        updates.append(
            (case, send(document_update(fake_api.add_file(case.data), size=len(case.data), mime_type=case.mime)))
        )
        if index == len(cases) // 2:
            canaries.append(canary())
    canaries.append(canary())

    for case, update in updates:
        chat = chat_of(update)
        if case.accepted:
            [reply] = fake_api.wait_for("sendPhoto", chat_id=chat, timeout=PIPELINE_TIMEOUT_SECONDS)
            upload = TelegramUpdate.objects.get(pk=update["update_id"]).upload
            observed = assert_result(upload, case)
            caption = reply.fields["caption"]
            if upload.faces_found > MAX_FACES:
                assert caption.startswith(f"Only the {MAX_FACES} largest of the {upload.faces_found} faces found"), (
                    caption
                )
            else:
                assert caption.startswith("1 face found:"), (case.name, caption)
            assert Image.open(io.BytesIO(reply.files["photo"])).format == "JPEG"
            observe(case.name, "telegram", observed)
        else:
            [reply] = fake_api.wait_for("sendMessage", chat_id=chat, timeout=PIPELINE_TIMEOUT_SECONDS)
            assert case.words in reply.fields["text"], (case.name, reply.fields["text"])
            observe(case.name, "telegram", f"message: “{reply.fields['text']}”")
            assert not Upload.objects.filter(telegram_update__pk=update["update_id"]).exists(), case.name
    for update in canaries:
        fake_api.wait_for("sendPhoto", chat_id=chat_of(update), timeout=PIPELINE_TIMEOUT_SECONDS)
        upload = TelegramUpdate.objects.get(pk=update["update_id"]).upload
        assert_canaries_done([upload.pk], "telegram")
    assert_nothing_unfinished()
    assert_worker_unharmed(worker)
