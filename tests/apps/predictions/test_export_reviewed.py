"""``manage.py export_reviewed DIR`` writes a dataset that ml.evaluate (and ml.train) read as they read UTKFace."""

import csv
import json
from io import StringIO

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image

from apps.faces.services import faces_detect
from apps.predictions.models import FaceEstimate
from apps.predictions.services import dataset_split, estimate_review_create, faces_estimate
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from ml import evaluate
from tests.support import finish_with_faces

pytestmark = pytest.mark.django_db

# MTCNN's landmarks of the astronaut's face in skimage.data.astronaut() (512 x 512), rounded.
ASTRONAUT_LANDMARKS = {
    "left_eye": [207.0, 104.0],
    "right_eye": [245.0, 102.0],
    "nose": [228.0, 124.0],
    "mouth_left": [212.0, 146.0],
    "mouth_right": [243.0, 144.0],
}


def export(directory) -> str:
    out = StringIO()
    call_command("export_reviewed", str(directory), stdout=out)
    return out.getvalue()


def read_labels(directory) -> list[dict]:
    with open(directory / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_reviewed_faces_round_trip_through_ml_evaluate(
    one_face_jpeg, two_faces_jpeg, faces, model_weights, admin_user, tmp_path
):
    for photo in (one_face_jpeg, two_faces_jpeg):  # the real pipeline, in this process
        upload = upload_create(image=SimpleUploadedFile("p.jpg", photo), channel=Upload.Channel.WEB)
        faces_estimate(face_ids=faces_detect(upload_id=str(upload.pk)), upload_id=str(upload.pk))
    detected = list(FaceEstimate.objects.order_by("pk"))
    assert len(detected) == 3
    truths = {}
    for index, face in enumerate(detected):
        estimate_review_create(estimate=face, reviewer=admin_user)  # a first look, overruled below
        estimate_review_create(estimate=face, reviewer=admin_user, age=30 + index, gender="male")
        truths[f"{face.mongo_face_id}.jpg"] = {"age": str(30 + index), "gender": "0", "race": ""}

    output = export(tmp_path / "reviewed")

    rows = read_labels(tmp_path / "reviewed")
    assert {row["filename"]: {k: row[k] for k in ("age", "gender", "race")} for row in rows} == truths
    assert all(row["split"] == dataset_split(face_id=row["filename"].removesuffix(".jpg")) for row in rows)
    assert "Exported 3 reviewed faces" in output
    for row in rows:
        with Image.open(tmp_path / "reviewed" / "images" / row["filename"]) as image:
            assert (image.format, image.size) == ("JPEG", (200, 200))

    metrics = evaluate.main(
        [
            "--labels", str(tmp_path / "reviewed" / "labels.csv"),
            "--images", str(tmp_path / "reviewed" / "images"),
            "--out", str(tmp_path / "evaluation"),
        ]
    )  # fmt: skip

    saved = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())
    assert saved["n"] == 3 == metrics["n"]
    assert saved["detection_misses"] == 0  # MTCNN finds the face again in every exported crop
    assert saved["age_mae"] is not None and 0 <= saved["gender_accuracy"] <= 1


def test_unreviewed_faces_and_lost_photos_are_left_out(one_face_jpeg, faces, admin_user, tmp_path):
    kept = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.WEB)
    lost = upload_create(image=SimpleUploadedFile("b.jpg", one_face_jpeg), channel=Upload.Channel.API)
    [reviewed, _unreviewed] = finish_with_faces(kept, {"landmarks": ASTRONAUT_LANDMARKS}, {})
    [gone] = finish_with_faces(lost, {"landmarks": ASTRONAUT_LANDMARKS})
    for face in (reviewed, gone):
        estimate_review_create(estimate=face, reviewer=admin_user, age=40, gender="female")
    lost.image.delete(save=False)

    output = export(tmp_path / "out")

    [row] = read_labels(tmp_path / "out")
    assert (row["filename"], row["age"], row["gender"]) == (f"{reviewed.mongo_face_id}.jpg", "40", "1")
    assert "Skipped 1 whose photo is gone or unreadable." in output
    crop = np.asarray(Image.open(tmp_path / "out" / "images" / row["filename"]))
    assert crop.shape == (200, 200, 3) and crop.std() > 10  # a real cut of the photo, not a blank
