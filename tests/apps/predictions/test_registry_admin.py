"""The admin's model registry: versions side by side, promotion (refused, forced, logged), roll back, training runs."""

import pytest
from django.contrib.admin.models import LogEntry

from apps.predictions.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db

VERSIONS = "/admin/predictions/modelversion/"
RUNS = "/admin/predictions/trainingrun/"
UTKFACE = {"images": 20, "age_mae": 5.0, "gender_accuracy": 0.95, "interval_coverage": 0.9}
REVIEWED = {"images": 4, "age_mae": 10.0, "gender_accuracy": 1.0, "interval_coverage": 0.5}


@pytest.fixture
def shipped() -> ModelVersion:
    return ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)


@pytest.fixture
def staff_client(client, django_user_model):
    """Staff who may view the registry, but is no superuser."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("sam", password="not-used", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_modelversion", "view_trainingrun"]))
    client.force_login(user)
    return client


def make_candidate(shipped, utkface_mae: float) -> ModelVersion:
    return ModelVersion.objects.create(
        version="ag-candidate",
        image_size=96,
        parent=shipped,
        metrics={"utkface": {**UTKFACE, "age_mae": utkface_mae}, "reviewed": {**REVIEWED, "age_mae": 4.0}},
        baseline_metrics={"utkface": UTKFACE, "reviewed": REVIEWED},
    )


def text(response) -> str:
    return " ".join(response.text.split())


def test_a_candidate_is_shown_beside_the_active_version_and_promoted(admin_client, admin_user, shipped):
    candidate = make_candidate(shipped, utkface_mae=5.1)

    page = text(admin_client.get(f"{VERSIONS}{candidate.pk}/change/"))

    assert f"<h2>ag-candidate against {shipped.version}, the active version</h2>" in page
    assert "<td>utkface</td><td>20</td><td>age MAE</td> <td>5.10</td><td>5.00</td><td>+0.10</td>" in page
    assert "<td>reviewed</td><td>4</td><td>age MAE</td> <td>4.00</td><td>10.00</td><td>-6.00</td>" in page
    assert (
        "<td>reviewed</td><td>4</td><td>80% interval coverage</td> <td>50.0%</td><td>50.0%</td><td>+0.0%</td>" in page
    )
    assert "worse by more than the margin" not in page and 'value="Promote ag-candidate"' in page

    response = admin_client.post(f"{VERSIONS}{candidate.pk}/promote/", follow=True)

    assert "Promoted ag-candidate: the workers switch to it between two tasks." in text(response)
    candidate.refresh_from_db()
    assert (candidate.state, candidate.promoted_by, candidate.promotion_forced) == ("active", admin_user, False)
    entry = LogEntry.objects.get(object_id=str(candidate.pk))
    assert entry.get_change_message() == f"Promoted, replacing {shipped.version}"
    # The active version's page shows it against the version it replaced, and offers to roll back to it.
    page = text(admin_client.get(f"{VERSIONS}{candidate.pk}/change/"))
    assert f"<h2>ag-candidate against {shipped.version}, which it replaced</h2>" in page
    assert f'value="Roll back to {shipped.version}"' in page


def test_a_worse_candidate_is_refused_and_only_forcing_promotes_it(admin_client, shipped):
    candidate = make_candidate(shipped, utkface_mae=6.0)

    page = text(admin_client.get(f"{VERSIONS}{candidate.pk}/change/"))
    assert '<tr class="worse"><td>utkface</td><td>20</td><td>age MAE</td>' in page
    assert "<li>utkface: age MAE 6.00 years against 5.00</li>" in page
    assert 'name="force" value="Force promote ag-candidate"' in page and 'value="Promote ag-candidate"' not in page

    refused = text(admin_client.post(f"{VERSIONS}{candidate.pk}/promote/", follow=True))
    assert "Not promoted: ag-candidate measured worse, utkface: age MAE 6.00 years against 5.00." in refused
    assert ModelVersion.objects.get(pk=candidate.pk).state == "candidate"

    admin_client.post(f"{VERSIONS}{candidate.pk}/promote/", {"force": "Force promote"})
    candidate.refresh_from_db()
    assert (candidate.state, candidate.promotion_forced) == ("active", True)
    assert LogEntry.objects.get(object_id=str(candidate.pk)).get_change_message() == (
        f"Forced promotion over {shipped.version}"
    )

    rolled = text(admin_client.post(f"{VERSIONS}rollback/", follow=True))
    assert f"Rolled back: {shipped.version} is active again." in rolled
    assert ModelVersion.objects.get(state="active") == shipped
    assert LogEntry.objects.get(object_id=str(shipped.pk)).get_change_message() == (
        "Rolled back to it from ag-candidate"
    )


def test_only_superusers_promote_roll_back_and_train(staff_client, shipped):
    candidate = make_candidate(shipped, utkface_mae=5.0)

    page = staff_client.get(f"{VERSIONS}{candidate.pk}/change/")
    assert page.status_code == 200 and 'value="Promote' not in page.text and "utkface" in page.text
    assert "Train a candidate" not in staff_client.get(RUNS).text
    for url in (f"{VERSIONS}{candidate.pk}/promote/", f"{VERSIONS}rollback/", f"{RUNS}train/"):
        assert staff_client.post(url).status_code == 403
    assert ModelVersion.objects.get(state="active") == shipped and not TrainingRun.objects.exists()


def test_a_training_run_is_queued_from_the_list_and_shows_its_progress(
    admin_client, django_capture_on_commit_callbacks
):
    assert 'value="Train a candidate from the reviews"' in admin_client.get(RUNS).text

    with django_capture_on_commit_callbacks() as queued:
        response = admin_client.post(f"{RUNS}train/")
    run = TrainingRun.objects.get()
    assert response.url == f"{RUNS}{run.pk}/change/" and len(queued) == 1
    TrainingRun.objects.filter(pk=run.pk).update(
        state="running", progress=0.42, stage="epoch 2 of 5 done", log_tail="19:01:02 ml.retraining epoch 2/5: <ok>"
    )

    page = text(admin_client.get(f"{RUNS}{run.pk}/change/"))
    assert '<meta http-equiv="refresh" content="10">' in page
    assert '<progress max="1" value="0.42"></progress> 42%' in page and "epoch 2 of 5 done" in page
    assert "<pre>19:01:02 ml.retraining epoch 2/5: &lt;ok&gt;</pre>" in page

    again = text(admin_client.post(f"{RUNS}train/", follow=True))
    assert f"Training run {run.pk} is running: one at a time." in again
