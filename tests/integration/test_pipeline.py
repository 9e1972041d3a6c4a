"""The whole pipeline for real: API -> SQL + file storage -> Redis -> Celery worker (MTCNN, the age and
gender model) -> MongoDB + SQL -> API, on photos made from scikit-image's samples."""

import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from bson import ObjectId
from django.core.files.base import ContentFile
from rest_framework_api_key.models import APIKey

from apps.faces.services import UNREADABLE_IMAGE
from apps.predictions.models import FaceEstimate
from apps.predictions.services import prediction_pipeline_start
from apps.predictions.tasks import faces_estimate
from apps.uploads.models import Upload
from devtools import devstack
from tests.support import app_env, make_client, photo_file, stored_files, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

LIST_URL = "/api/v1/predictions"
# Where MTCNN finds the astronaut's face in skimage.data.astronaut() (512 x 512).
ASTRONAUT_FACE_CENTER = (224, 118)


@pytest.fixture
def api(worker):
    """An API client whose uploads the module's worker analyses."""
    return make_client("integration")[0]


def analyse(api, data: bytes) -> dict:
    """Upload a photo and return the finished prediction as the API shows it."""
    response = api.post(LIST_URL, {"image": photo_file(data)}, format="multipart")
    assert response.status_code == 202, response.content
    upload_id = response.json()["id"]
    wait_until_finished(upload_id)
    return api.get(f"{LIST_URL}/{upload_id}").json()


def center(box: dict) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def near(point, expected, tolerance: float = 30) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(point, expected, strict=True))


def p_female(face: dict) -> float:
    gender = face["gender"]
    return gender["probability"] if gender["label"] == "female" else 1 - gender["probability"]


def assert_plausible_face(face: dict, model_version: str) -> None:
    age, gender = face["age"], face["gender"]
    assert 0 <= age["low"] <= age["value"] <= age["high"] <= 120
    assert 0 < age["level"] < 1
    assert gender["label"] in {"female", "male"}
    assert 0.5 <= gender["probability"] <= 1
    assert face["detection_confidence"] >= 0.9
    assert set(face["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert face["model_version"] == model_version


@pytest.fixture(scope="module")
def model_version(model_weights) -> str:
    return json.loads((model_weights / "model.json").read_text())["version"]


def test_one_face(api, one_face_jpeg, faces, model_version):
    result = analyse(api, one_face_jpeg)

    assert result["status"] == "done", result["failure_reason"]
    assert result["image"] == {"width": 512, "height": 512}
    [face] = result["faces"]
    assert near(center(face["box"]), ASTRONAUT_FACE_CENTER)
    assert near(face["landmarks"]["nose"], ASTRONAUT_FACE_CENTER, tolerance=40)
    assert_plausible_face(face, model_version)
    assert {"queue_ms", "decode_ms", "detection_ms", "estimation_ms", "total_ms"} <= set(result["timings"])

    row = FaceEstimate.objects.get(upload_id=result["id"])
    document = faces.find_one({"_id": ObjectId(row.mongo_face_id)})
    assert (document["upload_id"], document["face_index"]) == (result["id"], 0)
    assert document["crop_png"].startswith(b"\x89PNG")
    assert "estimate" not in document  # the estimates are SQL's alone
    raw = document["raw"]  # the model's own outputs, kept for review and retraining
    assert raw["model_version"] == model_version
    assert len(raw["age_probabilities"]) == 101 and sum(raw["age_probabilities"]) == pytest.approx(1, abs=1e-3)
    assert raw["p_female"] == pytest.approx(p_female(face))


def test_several_faces(api, two_faces_jpeg, faces, model_version):
    result = analyse(api, two_faces_jpeg)

    assert result["status"] == "done", result["failure_reason"]
    assert len(result["faces"]) == 2
    centers = sorted(center(face["box"]) for face in result["faces"])
    assert near(centers[0], ASTRONAUT_FACE_CENTER)
    assert near(centers[1], (ASTRONAUT_FACE_CENTER[0] + 512, ASTRONAUT_FACE_CENTER[1]))
    for face in result["faces"]:
        assert_plausible_face(face, model_version)
    # The same face twice, at another place in the photo: JPEG blocks and the detector's pyramid
    # put the landmarks a pixel or so apart, so the estimates agree within each other's intervals.
    first, second = result["faces"]
    for one, other in ((first, second), (second, first)):
        assert other["age"]["low"] <= one["age"]["value"] <= other["age"]["high"]
    assert abs(p_female(first) - p_female(second)) < 0.15  # the astronaut is a near coin toss for gender: compare P
    assert faces.count_documents({"upload_id": result["id"]}) == 2


def test_no_face_is_a_result(api, no_face_jpeg, faces):
    result = analyse(api, no_face_jpeg)

    assert (result["status"], result["faces"], result["failure_reason"]) == ("done", [], "")
    assert faces.count_documents({"upload_id": result["id"]}) == 0


def test_unreadable_stored_photo_fails_with_a_reason_and_no_retry(one_face_jpeg, worker):
    # Uploads are decoded on arrival now (a truncated one is refused), but a photo stored before
    # that, or damaged in storage since, must still fail cleanly in the worker.
    log_size = worker.log_file.stat().st_size
    upload = Upload(channel=Upload.Channel.API, width=512, height=512)
    upload.image.save("image.jpg", ContentFile(one_face_jpeg[: len(one_face_jpeg) // 3]))

    prediction_pipeline_start(upload_id=upload.pk)

    upload = wait_until_finished(upload.pk)
    assert (upload.status, upload.failure_reason, upload.faces.count()) == ("failed", UNREADABLE_IMAGE, 0)
    assert b"Retry in" not in worker.log_file.read_bytes()[log_size:]


def test_redelivered_tasks_create_no_duplicates(api, one_face_jpeg, faces, worker):
    result = analyse(api, one_face_jpeg)
    upload_id = result["id"]
    face_ids = [str(document["_id"]) for document in faces.find({"upload_id": upload_id})]
    rows = list(FaceEstimate.objects.filter(upload_id=upload_id).values_list("pk", "mongo_face_id"))

    # A worker died mid-pipeline and the broker hands both tasks out again.
    Upload.objects.filter(pk=upload_id).update(status=Upload.Status.PROCESSING)
    prediction_pipeline_start(upload_id=upload_id)
    wait_until_finished(upload_id)
    # A late duplicate of the last task, after the upload is done.
    duplicate = faces_estimate.apply_async(args=[face_ids, upload_id])
    wait_for_log(worker, f"[{duplicate.id}] succeeded")

    assert sorted(str(document["_id"]) for document in faces.find({"upload_id": upload_id})) == sorted(face_ids)
    assert list(FaceEstimate.objects.filter(upload_id=upload_id).values_list("pk", "mongo_face_id")) == rows
    assert Upload.objects.get(pk=upload_id).status == Upload.Status.DONE


def test_delete_leaves_nothing_behind(api, one_face_jpeg, faces):
    result = analyse(api, one_face_jpeg)
    upload = Upload.objects.get(pk=result["id"])
    assert faces.count_documents({"upload_id": result["id"]}) == 1
    path = Path(upload.image.path)

    assert api.delete(f"{LIST_URL}/{upload.pk}").status_code == 204

    assert not path.exists()
    assert path not in stored_files()
    assert faces.count_documents({"upload_id": result["id"]}) == 0
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert not FaceEstimate.objects.filter(upload_id=upload.pk).exists()


def test_over_http_with_gunicorn_which_never_loads_tensorflow(worker, one_face_jpeg, services_dir, model_version):
    _, key = APIKey.objects.create_key(name="http")
    web = devstack.start_web(app_env(ALLOWED_HOSTS="127.0.0.1"), devstack.free_port(), services_dir / "web.log")
    try:
        created = http_json(web.url + LIST_URL, key, multipart_body(one_face_jpeg))
        assert created["status"] == "pending"
        deadline = time.monotonic() + 300
        result = http_json(f"{created['url']}?wait=30", key)
        while result["status"] not in ("done", "failed") and time.monotonic() < deadline:
            result = http_json(f"{created['url']}?wait=30", key)

        assert result["status"] == "done", result["failure_reason"]
        [face] = result["faces"]
        assert_plausible_face(face, model_version)
        assert not any(maps_mention(pid, "tensorflow") for pid in process_tree(web.process.pid))
        # The same check sees TensorFlow where it is loaded: in the worker that ran the model.
        assert any(maps_mention(pid, "tensorflow") for pid in process_tree(worker.process.pid))
    finally:
        web.stop()


# --- helpers for the HTTP test ------------------------------------------------------------------


def multipart_body(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def http_json(url: str, key: str, body: tuple[bytes, str] | None = None) -> dict:
    headers = {"Authorization": f"Api-Key {key}"}
    if body is not None:
        headers["Content-Type"] = body[1]
    request = urllib.request.Request(url, data=body[0] if body else None, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (gunicorn's and Celery's forked workers)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            pids += process_tree(int(child))
    return pids


def maps_mention(pid: int, library: str) -> bool:
    """Whether a shared library whose path mentions ``library`` is mapped into the process."""
    return library in Path(f"/proc/{pid}/maps").read_text()


def wait_for_log(service, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in service.log_file.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"worker never logged {text!r}:\n{service.log_tail()}"
        time.sleep(0.5)
