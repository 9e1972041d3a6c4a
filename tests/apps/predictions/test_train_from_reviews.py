"""The loop from reviews to the served model, with a real worker: 40 faces (UTKFace chips pasted into photos) that
reviewers all read 10 years older than the model did, ``train_from_reviews`` on the ``ml`` queue, a candidate whose
age error on those faces' held-out split drops, its promotion in the admin, and the next photo estimated by it;
then a roll back, and the next photo is the old version's again."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from bson import ObjectId
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image

from apps.predictions.models import FaceEstimate, ModelVersion, TrainingRun
from apps.predictions.selectors import model_version_promotion_refusals
from apps.predictions.services import dataset_split, estimate_review_create, prediction_request
from apps.uploads.models import Upload
from ml.dataset import read_labels
from tests.support import encode, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

REVIEWED_FACES = 40
HELD_OUT_AT_LEAST = 5  # faces of the reviewed test split, on which the candidate is measured
MORE_YEARS = 10  # what every reviewer adds to the model's age
TRAINING_TIMEOUT_SECONDS = 900
DATA = settings.MODEL_TRAINING_DATA_DIR
VERSIONS = "/admin/predictions/modelversion/"


@pytest.fixture(scope="module")
def worker_env(tmp_path_factory):
    """Each pipeline task looks for a promotion; the fine-tune's files and fetched weights go to the test's folder."""
    if not (DATA / "utkface" / "labels.csv").exists():
        pytest.skip(f"the shared training data is not at {DATA}")
    folder = tmp_path_factory.mktemp("registry")
    return {
        "MODEL_VERSION_CHECK_SECONDS": "0",
        "MODEL_CACHE_DIR": str(folder / "model-cache"),
        "MODEL_TRAINING_DIR": str(folder / "training"),
    }


@pytest.fixture
def shipped(model_weights) -> ModelVersion:
    """The active version the migration registers (a transactional test before this one may have flushed it)."""
    card = json.loads((model_weights / "model.json").read_text())
    version, _ = ModelVersion.objects.get_or_create(
        version=card["version"], defaults={"state": ModelVersion.State.ACTIVE, "image_size": card["image_size"]}
    )
    return version


def chip_photos():
    """Photos of one face each: UTKFace chips of its val split (so in no test split) pasted on a cup of coffee."""
    rows = read_labels(DATA / "utkface" / "labels.csv", split="val")
    for row in rows[:: len(rows) // 200]:
        photo = skimage.data.coffee().copy()
        chip = np.asarray(Image.open(DATA / "utkface" / "images" / row.filename).convert("RGB").resize((200, 200)))
        photo[100:300, 300:500] = chip
        yield encode(photo, quality=92)


def analyse(photo: bytes) -> Upload:
    return prediction_request(image=SimpleUploadedFile("photo.jpg", photo), channel=Upload.Channel.API)


def reviewed_faces_with_a_held_out_part(photos, admin_user) -> list[FaceEstimate]:
    """40 faces, at least HELD_OUT_AT_LEAST of them in the test split (it depends on the face's id only: more photos
    are analysed until enough land there), each corrected to the model's age plus MORE_YEARS."""
    held_out, others = [], []
    while len(held_out) < HELD_OUT_AT_LEAST or len(held_out) + len(others) < REVIEWED_FACES:
        uploads = [analyse(next(photos)) for _ in range(10)]
        for upload in uploads:
            assert wait_until_finished(upload.pk).status == Upload.Status.DONE
            for face in FaceEstimate.objects.filter(upload=upload):
                (held_out if dataset_split(face_id=face.mongo_face_id) == "test" else others).append(face)
    chosen = held_out + others[: REVIEWED_FACES - len(held_out)]
    for face in chosen:
        estimate_review_create(estimate=face, reviewer=admin_user, age=round(face.age_value) + MORE_YEARS)
    return chosen


def wait_for(run: TrainingRun) -> TrainingRun:
    deadline = time.monotonic() + TRAINING_TIMEOUT_SECONDS
    while run.state in (TrainingRun.State.QUEUED, TrainingRun.State.RUNNING):
        assert time.monotonic() < deadline, f"training run {run.pk} still {run.state}: {run.stage}"
        time.sleep(2)
        run.refresh_from_db()
    return run


def test_reviews_train_a_candidate_that_a_promotion_puts_in_service(
    worker, worker_env, shipped, admin_user, client, faces
):
    photos = chip_photos()
    reviewed = reviewed_faces_with_a_held_out_part(photos, admin_user)
    assert len(reviewed) == REVIEWED_FACES and {face.model_version for face in reviewed} == {shipped.version}
    held_out = sum(dataset_split(face_id=face.mongo_face_id) == "test" for face in reviewed)

    call_command("train_from_reviews", "--replay-size", "64", "--epochs", "6", "--epoch-size", "256",
                 "--learning-rate", "3e-3", "--reviewed-share", "0.75", "--test-limit", "12")  # fmt: skip
    run = wait_for(TrainingRun.objects.get())

    assert run.state == TrainingRun.State.DONE, f"{run.error}\n{run.log_tail}"
    candidate = run.candidate
    assert (candidate.state, candidate.parent, run.base, run.progress) == ("candidate", shipped, shipped, 1.0)
    assert set(candidate.metrics) == set(candidate.baseline_metrics) == {
        "utkface", "korean_family_age", "scut_fbp5500", "reviewed",
    }  # fmt: skip
    ours, theirs = candidate.metrics["reviewed"], candidate.baseline_metrics["reviewed"]
    took = (run.finished_at - run.started_at).total_seconds()
    print(f"\nrun of {took:.1f} s, {held_out} held-out faces; figures per set (candidate / active):")
    for name in candidate.metrics:
        row, base = candidate.metrics[name], candidate.baseline_metrics[name]
        print(f"  {name}: " + ", ".join(f"{key} {row[key]:.3f} / {base[key]:.3f}" for key in
              ("age_mae", "age_range_distance", "age_bound_inside", "gender_accuracy", "interval_coverage")
              if row[key] is not None))  # fmt: skip
    assert ours["images"] == theirs["images"] == held_out
    # Both models are measured on the same detections; MTCNN may miss a face in a re-detected 200 px crop (one of 5
    # in a CI run), which leaves the rest to measure.
    assert ours["detection_misses"] == theirs["detection_misses"] <= held_out // 5
    assert theirs["age_mae"] == pytest.approx(MORE_YEARS, abs=2)  # the active model misses by what reviewers added
    assert ours["age_mae"] < theirs["age_mae"] - 0.5  # the candidate learnt some of it
    assert candidate.training_data["faces"]["reviewed"]["train"] == candidate.training_data["reviewed_export"]["train"]
    assert candidate.training_data["reviewed_export"]["test"] == held_out  # measured on, never trained on
    assert "epoch 6/6" in run.log_tail
    training_dir = Path(worker_env["MODEL_TRAINING_DIR"])
    assert (
        not (training_dir / f"run-{run.pk}").exists() and (training_dir / "cache").exists()
    )  # faces gone, replay kept

    client.force_login(admin_user)
    refusals = model_version_promotion_refusals(candidate=candidate, active=shipped)
    client.post(f"{VERSIONS}{candidate.pk}/promote/", {"force": "1"} if refusals else {})
    candidate.refresh_from_db()
    assert (candidate.state, candidate.promotion_forced) == ("active", bool(refusals))

    promoted_photo = analyse(next(photos))
    assert wait_until_finished(promoted_photo.pk).status == Upload.Status.DONE
    [face] = FaceEstimate.objects.filter(upload=promoted_photo)
    assert face.model_version == candidate.version
    document = faces.find_one({"_id": ObjectId(face.mongo_face_id)})
    assert (document["model_version"], document["raw"]["model_version"]) == (candidate.version, candidate.version)

    client.post(f"{VERSIONS}rollback/")
    rolled_back_photo = analyse(next(photos))
    assert wait_until_finished(rolled_back_photo.pk).status == Upload.Status.DONE
    assert FaceEstimate.objects.get(upload=rolled_back_photo).model_version == shipped.version
