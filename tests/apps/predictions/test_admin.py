"""The admin: reviewers see everything and review faces, and change nothing else; admins also delete."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.predictions.models import EstimateReview, FaceEstimate, ModelVersion
from apps.uploads.models import Upload
from apps.uploads.services import upload_create
from tests.support import finish_with_faces, stored_files

pytestmark = pytest.mark.django_db

FACES = "/admin/predictions/faceestimate/"
UPLOADS = "/admin/uploads/upload/"
REVIEW = f"{FACES}review/"


@pytest.fixture
def reviewer(django_user_model):
    user = django_user_model.objects.create_user("rita", password="not-used", is_staff=True)
    user.groups.add(Group.objects.get(name="Reviewers"))
    return user


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.fixture
def make_upload(one_face_jpeg, faces):
    def make(*predictions: dict, channel=Upload.Channel.WEB) -> tuple[Upload, list[FaceEstimate]]:
        upload = upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=channel)
        return upload, finish_with_faces(upload, *predictions)

    return make


def review_order(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<form method="post" class="review-card" id="review-(\d+)"', response.text)]


def test_reviewers_group_may_view_and_review_only():
    group = Group.objects.get(name="Reviewers")

    assert sorted(group.permissions.values_list("codename", flat=True)) == [
        "review_estimates",
        "view_estimatereview",
        "view_faceestimate",
        "view_upload",
    ]
    assert Permission.objects.get(codename="review_estimates").name == (
        "Can confirm or correct estimated age and gender"
    )


def test_reviewer_sees_uploads_faces_crops_and_the_photo_with_boxes(reviewer_client, make_upload):
    upload, [face] = make_upload({})

    for url in (UPLOADS, FACES, "/admin/predictions/estimatereview/", REVIEW, f"{FACES}dashboard/", "/admin/"):
        assert reviewer_client.get(url).status_code == 200, url
    page = reviewer_client.get(f"{UPLOADS}{upload.pk}/change/").text
    assert f'src="/admin/uploads/upload/{upload.pk}/photo.jpg"' in page
    assert 'class="face-box"' in page and "F, 41 (33-50)" in page
    assert f'src="/admin/predictions/faceestimate/{face.pk}/crop.png"' in page
    face_page = reviewer_client.get(f"{FACES}{face.pk}/change/").text
    assert "F, 41 (33-50)" in face_page and f"{face.pk}/crop.png" in face_page
    crop = reviewer_client.get(f"{FACES}{face.pk}/crop.png")
    assert (crop.status_code, crop["Content-Type"]) == (200, "image/png")
    photo = reviewer_client.get(f"{UPLOADS}{upload.pk}/photo.jpg")
    assert (photo.status_code, photo["Content-Type"]) == (200, "image/jpeg")
    listing = reviewer_client.get(FACES).text
    assert "F, 41 (33-50)" in listing and "87%" in listing


def test_reviewer_cannot_delete_or_change_anything(reviewer_client, make_upload, reviewer):
    upload, [face] = make_upload({})
    review = EstimateReview.objects.create(estimate=face, reviewer=reviewer, confirmed=True, age=41, gender="female")

    forbidden = [
        ("get", f"{UPLOADS}{upload.pk}/delete/", {}),
        ("post", f"{UPLOADS}{upload.pk}/delete/", {"post": "yes"}),
        ("post", f"{UPLOADS}{upload.pk}/change/", {"status": "failed"}),
        ("get", f"{UPLOADS}add/", {}),
        ("post", f"{FACES}{face.pk}/change/", {"age_value": "20"}),
        ("get", f"{FACES}{face.pk}/delete/", {}),
        ("get", f"/admin/predictions/estimatereview/{review.pk}/delete/", {}),
        ("post", f"/admin/predictions/estimatereview/{review.pk}/change/", {"age": "3"}),
        ("get", "/admin/auth/user/", {}),
        ("get", "/admin/auth/group/", {}),
        ("get", "/admin/rest_framework_api_key/apikey/", {}),
    ]
    for method, url, data in forbidden:
        assert getattr(reviewer_client, method)(url, data).status_code == 403, url
    # The bulk delete action is not offered, and posting it anyway deletes nothing.
    assert "delete_selected" not in reviewer_client.get(UPLOADS).text
    reviewer_client.post(UPLOADS, {"action": "delete_selected", "_selected_action": [upload.pk], "post": "yes"})

    assert Upload.objects.filter(pk=upload.pk).exists()
    face.refresh_from_db()
    assert (face.age_value, face.gender_label) == (41.2, "female")
    assert EstimateReview.objects.get(pk=review.pk).age == 41


def test_queue_shows_the_least_confident_first_and_only_unreviewed_finished_faces(
    reviewer_client, make_upload, reviewer
):
    _, [sure, coin_toss, vague, reviewed] = make_upload(
        {"gender_probability": 0.99, "age_low": 40, "age_high": 42},
        {"gender_probability": 0.52, "age_low": 40, "age_high": 42},
        {"gender_probability": 0.99, "age_low": 20, "age_high": 50},
        {"gender_probability": 0.51, "age_low": 40, "age_high": 42},
    )
    EstimateReview.objects.create(estimate=reviewed, reviewer=reviewer, confirmed=True, age=41, gender="female")
    pending, _ = make_upload({})
    Upload.objects.filter(pk=pending.pk).update(status=Upload.Status.PROCESSING)

    response = reviewer_client.get(REVIEW)

    assert review_order(response) == [coin_toss.pk, vague.pk, sure.pk]
    assert "3 faces to review" in response.text


def test_reviewer_confirms_or_corrects_a_face_in_one_step(reviewer_client, make_upload, reviewer):
    _, [first, second] = make_upload({}, {"age_value": 30.4, "gender_label": "male"})

    confirmed = reviewer_client.post(REVIEW, {"face": first.pk, "verdict": "confirm"}, follow=True)
    corrected = reviewer_client.post(
        REVIEW, {"face": second.pk, "verdict": "correct", "age": "25", "gender": "female"}, follow=True
    )

    assert f"Face {first.pk} confirmed." in confirmed.text
    assert f"Face {second.pk} corrected to female, 25." in corrected.text
    assert review_order(corrected) == []
    one, two = EstimateReview.objects.get(estimate=first), EstimateReview.objects.get(estimate=second)
    assert (one.confirmed, one.age, one.gender, one.reviewer) == (True, 41, "female", reviewer)
    assert (two.confirmed, two.age, two.gender, two.reviewer) == (False, 25, "female", reviewer)
    assert one.reviewed_at <= two.reviewed_at
    second.refresh_from_db()
    assert (second.age_value, second.gender_label) == (30.4, "male")  # the prediction stays as it was


def test_a_face_can_be_reviewed_again_and_both_verdicts_are_kept(reviewer_client, make_upload):
    _, [face] = make_upload({})
    reviewer_client.post(REVIEW, {"face": face.pk, "verdict": "confirm"})

    again = reviewer_client.get(f"{REVIEW}?face={face.pk}")
    reviewer_client.post(
        f"{REVIEW}?face={face.pk}", {"face": face.pk, "verdict": "correct", "age": "50", "gender": "male"}
    )

    assert review_order(again) == [face.pk] and "already reviewed" in again.text
    assert reviewer_client.get(f"{REVIEW}?face=x").status_code == 404
    assert list(face.reviews.values_list("age", "gender")) == [(50, "male"), (41, "female")]  # newest first


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"verdict": "correct", "age": "300", "gender": "female"}, "less than or equal to 120"),
        ({"verdict": "correct", "age": "", "gender": "female"}, "A correction needs an age and a gender."),
        ({"verdict": "correct", "age": "30", "gender": "other"}, "Select a valid choice."),
    ],
)
def test_impossible_corrections_are_refused(reviewer_client, make_upload, data, message):
    _, [face] = make_upload({})

    response = reviewer_client.post(REVIEW, {"face": face.pk, **data}, follow=True)

    assert message in response.text
    assert not EstimateReview.objects.exists()


def test_staff_without_the_review_permission_cannot_review(client, django_user_model, make_upload):
    _, [face] = make_upload({})
    viewer = django_user_model.objects.create_user("vic", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_faceestimate"))
    client.force_login(viewer)

    assert client.get(REVIEW).status_code == 403
    assert client.post(REVIEW, {"face": face.pk, "verdict": "confirm"}).status_code == 403
    assert not EstimateReview.objects.exists()


def test_anonymous_visitors_are_sent_to_the_login(client, make_upload):
    upload, [face] = make_upload({})

    for url in (REVIEW, f"{FACES}dashboard/", f"{FACES}{face.pk}/crop.png", f"{UPLOADS}{upload.pk}/photo.jpg"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/admin/login/"), url


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"sure", "coin toss", "child", "api"}),
        ("gender_label__exact=male", {"child"}),
        ("age_band=0-12", {"child"}),
        ("age_band=40-59", {"sure", "coin toss", "api"}),
        ("confidence=low", {"coin toss"}),
        ("confidence=high", {"sure", "child", "api"}),
        ("reviewed=yes", {"sure"}),
        ("reviewed=no", {"coin toss", "child", "api"}),
        ("model_version=ag-old", {"child"}),
        ("upload__channel__exact=api", {"api"}),
        ("upload__status__exact=done", {"sure", "coin toss", "child", "api"}),
    ],
)
def test_face_filters(admin_client, make_upload, query, expected, admin_user):
    web, [sure, coin_toss, child] = make_upload(
        {"gender_probability": 0.99, "age_low": 40, "age_high": 44},
        {"gender_probability": 0.55},
        {"age_value": 7, "age_low": 5, "age_high": 9, "gender_label": "male", "model_version": "ag-old"},
    )
    _, [api] = make_upload({"gender_probability": 0.97, "age_low": 40, "age_high": 44}, channel=Upload.Channel.API)
    EstimateReview.objects.create(estimate=sure, reviewer=admin_user, confirmed=True, age=41, gender="female")
    names = {sure.pk: "sure", coin_toss.pk: "coin toss", child.pk: "child", api.pk: "api"}

    response = admin_client.get(f"{FACES}?{query}")

    assert response.status_code == 200
    assert {names[face.pk] for face in response.context["cl"].result_list} == expected


def test_search_finds_an_upload_by_its_id(admin_client, make_upload):
    upload, [face] = make_upload({})
    make_upload({})

    faces = admin_client.get(FACES, {"q": str(upload.pk)}).context["cl"].result_list
    uploads = admin_client.get(UPLOADS, {"q": str(upload.pk)}).context["cl"].result_list

    assert [f.pk for f in faces] == [face.pk]
    assert [u.pk for u in uploads] == [upload.pk]


def test_upload_filters(admin_client, make_upload):
    done, _ = make_upload({})
    failed, _ = make_upload()
    Upload.objects.filter(pk=failed.pk).update(status=Upload.Status.FAILED)

    listed = admin_client.get(UPLOADS, {"status__exact": "failed"}).context["cl"].result_list

    assert [u.pk for u in listed] == [failed.pk]


def test_uploads_are_listed_newest_first(admin_client, make_upload):
    uploads = [make_upload()[0] for _ in range(3)]
    for days, upload in enumerate(uploads):  # the first made is the newest
        Upload.objects.filter(pk=upload.pk).update(created_at=timezone.now() - timedelta(days=days))

    listed = admin_client.get(UPLOADS).context["cl"].result_list

    assert [u.pk for u in listed] == [u.pk for u in uploads]


def test_admin_deletes_an_upload_everywhere(admin_client, make_upload, faces):
    upload, _ = make_upload({}, {})
    path = Path(upload.image.path)

    response = admin_client.post(f"{UPLOADS}{upload.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert not FaceEstimate.objects.filter(upload_id=upload.pk).exists()
    assert faces.count_documents({"upload_id": str(upload.pk)}) == 0
    assert path not in stored_files()


def test_admin_bulk_delete_removes_everything_too(admin_client, make_upload, faces):
    first, _ = make_upload({})
    second, _ = make_upload({})

    admin_client.post(UPLOADS, {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"})

    assert not Upload.objects.exists()
    assert faces.count_documents({}) == 0


def test_faces_are_only_deleted_with_their_photo(admin_client, make_upload):
    _, [face] = make_upload({})

    assert admin_client.get(f"{FACES}{face.pk}/delete/").status_code == 403


def test_dashboard_shows_traffic_review_share_and_agreement_per_model_version(admin_client, make_upload, admin_user):
    _, [a, b] = make_upload(
        {"age_value": 30, "age_low": 25, "age_high": 35, "gender_label": "female", "model_version": "ag-one"},
        {"age_value": 50, "age_low": 45, "age_high": 55, "gender_label": "male", "model_version": "ag-one"},
    )
    _, [c, _unreviewed] = make_upload({"model_version": "ag-two"}, {"model_version": "ag-two"})
    for face, age, gender in ((a, 34, "female"), (b, 40, "female"), (c, 41, "female")):
        EstimateReview.objects.create(estimate=face, reviewer=admin_user, confirmed=False, age=age, gender=gender)

    page = " ".join(admin_client.get(f"{FACES}dashboard/").text.split())

    assert page.count('<svg class="bar-chart"') == 3
    assert "<title>Photos per day</title>" in page
    assert re.search(r"\d\d-\d\d: 2 photos, 4 faces, 0 failed", page)
    assert "3 of 4 faces reviewed (75%)" in page
    # ag-one: errors 4 and 10 years, genders right and wrong, one true age inside its interval.
    assert "<td>ag-one</td><td>2</td><td>7.0</td> <td>50%</td> <td>50% (aimed at 80%)</td>" in page
    assert "<td>ag-two</td><td>1</td><td>0.2</td> <td>100%</td> <td>100% (aimed at 80%)</td>" in page


def test_the_index_and_the_dashboard_start_with_the_live_numbers(reviewer_client, make_upload):
    make_upload({"model_version": "ag-live"})

    for url in ("/admin/", f"{FACES}dashboard/"):
        page = " ".join(reviewer_client.get(url).text.split())

        assert '<div class="module" id="live-numbers">' in page
        assert re.search(r"Queue depth</th> <td>celery: \d+, ml: \d+</td>", page)
        assert "Photo latency, last 60 min</th> <td>no photo done</td>" in page  # it has no finished_at
        active = ModelVersion.objects.get(state=ModelVersion.State.ACTIVE).version  # the shipped weights, registered
        assert f"Active model version</th> <td>{active} (the newest estimate is by ag-live)</td>" in page
