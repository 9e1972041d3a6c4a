"""Reviews: a person's verdict beside each prediction, and what the dashboard and the export read from them."""

from collections import Counter

import pytest
from bson import ObjectId
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.predictions.models import EstimateReview
from apps.predictions.selectors import (
    review_agreement_by_model_version,
    review_progress,
    review_queue,
    reviewed_faces,
    uploads_per_day,
)
from apps.predictions.services import dataset_split, estimate_review_create
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from tests.support import finish_with_faces

pytestmark = pytest.mark.django_db


@pytest.fixture
def face(one_face_jpeg, faces):
    upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.WEB)
    [face] = finish_with_faces(upload, {"age_value": 30.6, "gender_label": "male"})
    return face


def test_confirming_keeps_the_prediction_as_the_truth(face, admin_user):
    review = estimate_review_create(estimate=face, reviewer=admin_user)

    assert (review.confirmed, review.age, review.gender, review.reviewer) == (True, 31, "male", admin_user)
    assert review.reviewed_at is not None


def test_a_correction_equal_to_the_prediction_counts_as_a_confirmation(face, admin_user):
    assert estimate_review_create(estimate=face, reviewer=admin_user, age=31, gender="male").confirmed
    assert not estimate_review_create(estimate=face, reviewer=admin_user, age=31, gender="female").confirmed


@pytest.mark.parametrize(("age", "gender"), [(121, "male"), (-1, "male"), (30, "unknown")])
def test_impossible_verdicts_are_refused(face, admin_user, age, gender):
    with pytest.raises(ValidationError):
        estimate_review_create(estimate=face, reviewer=admin_user, age=age, gender=gender)
    assert not EstimateReview.objects.exists()


def test_the_newest_review_counts_and_the_prediction_is_untouched(face, admin_user, django_user_model):
    other = django_user_model.objects.create_user("otto")
    estimate_review_create(estimate=face, reviewer=admin_user, age=20, gender="female")
    estimate_review_create(estimate=face, reviewer=other, age=25, gender="male")

    [reviewed] = reviewed_faces()
    assert (reviewed.true_age, reviewed.true_gender) == (25, "male")
    assert face.reviews.count() == 2
    face.refresh_from_db()
    assert (face.age_value, face.gender_label) == (30.6, "male")
    assert list(review_queue()) == []
    assert review_progress() == {"faces": 1, "reviewed": 1, "share": 1.0}


def test_agreement_without_reviews_is_empty(face):
    assert review_agreement_by_model_version() == []
    assert review_progress() == {"faces": 1, "reviewed": 0, "share": 0.0}


def test_uploads_per_day_covers_every_day_oldest_first(face):
    days = uploads_per_day(days=7)

    assert len(days) == 7
    assert days[0]["day"] < days[-1]["day"]
    assert {key: days[-1][key] for key in ("photos", "faces", "failed")} == {"photos": 1, "faces": 1, "failed": 0}
    assert all(day["photos"] == 0 for day in days[:-1])


def test_split_is_deterministic_and_about_80_10_10():
    ids = [str(ObjectId()) for _ in range(3000)]

    splits = Counter(dataset_split(face_id=face_id) for face_id in ids)

    assert [dataset_split(face_id=face_id) for face_id in ids[:50]] == [
        dataset_split(face_id=face_id) for face_id in ids[:50]
    ]
    assert set(splits) == {"train", "val", "test"}
    assert 0.77 < splits["train"] / 3000 < 0.83
    assert 0.08 < splits["val"] / 3000 < 0.12
