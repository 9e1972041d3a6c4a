"""The model registry: versions and their weights in the file storage, promotion against the active version, roll
back, a worker process following the active version, and the training runs' bookkeeping."""

import json
import logging
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.faces.pipeline import face_pipeline, face_pipeline_reset
from apps.predictions import signals
from apps.predictions.models import ModelVersion, TrainingRun
from apps.predictions.selectors import model_version_active, model_version_comparison
from apps.predictions.services import (
    TRAINING_LOST,
    TRAINING_NOT_QUEUED,
    ModelWeightsInvalid,
    PromotionRefused,
    TrainingRefused,
    model_candidate_train,
    model_version_promote,
    model_version_register,
    model_version_rollback,
    model_version_serve_active,
    model_weights_local,
    training_run_request,
)
from tests.support import celery_publishing_to

pytestmark = pytest.mark.django_db

SMALL_CROP = 48
# ml.evaluate_all's summary rows, as train_from_reviews measures them (only the figures the gate reads).
UTKFACE = {"images": 20, "age_mae": 5.0, "age_range_distance": None, "gender_accuracy": 0.95, "interval_coverage": 0.9}
KOREAN = {"images": 20, "age_mae": None, "age_range_distance": 2.0, "age_in_range": 0.5, "gender_accuracy": 0.9}
REVIEWED = {"images": 4, "age_mae": 10.0, "age_range_distance": None, "gender_accuracy": 1.0}


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """Weights of another crop size than the shipped ones (untrained: only the registry's handling matters)."""
    import keras

    from ml.inference import write_model
    from ml.model import build_model

    keras.utils.set_random_seed(11)
    directory = tmp_path_factory.mktemp("small-weights")
    write_model(build_model(SMALL_CROP), directory, SMALL_CROP, 1.0, {})
    return directory


@pytest.fixture(autouse=True)
def cache_dir(settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path / "model-cache"
    return settings.MODEL_CACHE_DIR


@pytest.fixture
def shipped() -> ModelVersion:
    return ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)


def candidate(parent, version="ag-candidate", **sets) -> ModelVersion:
    """A candidate fine-tuned from ``parent``, its figures and the parent's: each set is (its row, the parent's)."""
    return ModelVersion.objects.create(
        version=version,
        image_size=96,
        parent=parent,
        metrics={name: ours for name, (ours, _) in sets.items()},
        baseline_metrics={name: theirs for name, (_, theirs) in sets.items()},
    )


def test_the_weights_shipped_in_the_code_are_the_one_active_version(shipped, model_weights):
    card = json.loads((model_weights / "model.json").read_text())

    assert ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).count() == 1
    assert (shipped.version, shipped.image_size, shipped.weights_prefix) == (card["version"], 96, "")
    assert shipped.training_data["trained_on"] == ["utkface", "korean_family_age", "scut_fbp5500"]
    assert model_weights_local(model_version=shipped) == model_weights


def test_registered_weights_go_to_the_storage_and_each_machine_fetches_them_once(
    shipped, small_weights, cache_dir, stores
):
    version = model_version_register(
        weights_dir=small_weights, parent=shipped, training_data={"epochs": 1}, metrics={}, baseline_metrics={}
    )

    assert (version.state, version.image_size, version.parent) == (ModelVersion.State.CANDIDATE, SMALL_CROP, shipped)
    assert version.weights_prefix == f"models/{version.version}/"
    for name in ("age_gender.keras", "model.json"):
        with default_storage.open(version.weights_prefix + name, "rb") as stored:
            assert stored.read() == (small_weights / name).read_bytes()
    fetched = model_weights_local(model_version=version)
    assert fetched == cache_dir / version.version
    assert sorted(path.name for path in cache_dir.iterdir()) == [version.version]  # no half-fetched copy left
    default_storage.delete(version.weights_prefix + "age_gender.keras")
    assert model_weights_local(model_version=version) == fetched  # from the cache, not the storage

    again = model_version_register(
        weights_dir=small_weights, parent=shipped, training_data={"epochs": 2}, metrics={}, baseline_metrics={}
    )
    assert again.pk == version.pk and again.training_data == {"epochs": 2}  # same weights, same version


def test_damaged_weights_in_the_storage_are_refused_and_not_cached(shipped, small_weights, cache_dir, stores):
    version = model_version_register(
        weights_dir=small_weights, parent=shipped, training_data={}, metrics={}, baseline_metrics={}
    )
    default_storage.delete(version.weights_prefix + "age_gender.keras")
    default_storage.save(version.weights_prefix + "age_gender.keras", (small_weights / "model.json").open("rb"))

    with pytest.raises(ModelWeightsInvalid, match="should hold"):
        model_weights_local(model_version=version)
    assert list(cache_dir.iterdir()) == []


def test_weights_damaged_in_the_cache_are_fetched_again(shipped, small_weights, cache_dir, stores):
    version = model_version_register(
        weights_dir=small_weights, parent=shipped, training_data={}, metrics={}, baseline_metrics={}
    )
    cached = model_weights_local(model_version=version)
    (cached / "age_gender.keras").write_bytes(b"truncated")

    with pytest.raises(ModelWeightsInvalid):
        model_weights_local(model_version=version)
    assert not cached.exists()
    assert model_weights_local(model_version=version) == cached  # from the storage again


def test_a_candidate_within_the_margins_is_promoted_and_its_parent_retired(shipped, admin_user, settings):
    settings.MODEL_PROMOTION_MARGIN_YEARS, settings.MODEL_PROMOTION_MARGIN_GENDER = 0.25, 0.01
    better = candidate(
        shipped,
        utkface=({**UTKFACE, "age_mae": 5.2}, UTKFACE),  # worse, within 0.25 years
        korean_family_age=({**KOREAN, "gender_accuracy": 0.895}, KOREAN),  # worse, within a point
        reviewed=({**REVIEWED, "age_mae": 4.0}, REVIEWED),
    )

    promoted = model_version_promote(model_version=better, user=admin_user)

    assert (promoted.state, promoted.promoted_by, promoted.promotion_forced) == ("active", admin_user, False)
    assert promoted.promoted_at is not None and model_version_active() == promoted
    shipped.refresh_from_db()
    assert shipped.state == ModelVersion.State.RETIRED and shipped.retired_at is not None


def test_a_candidate_worse_on_any_set_is_refused_unless_forced(shipped, admin_user):
    worse = candidate(
        shipped,
        utkface=({**UTKFACE, "age_mae": 6.0, "gender_accuracy": 0.9}, UTKFACE),
        korean_family_age=({**KOREAN, "age_range_distance": 2.5}, KOREAN),
        reviewed=({**REVIEWED, "age_mae": 4.0}, REVIEWED),
    )

    with pytest.raises(PromotionRefused) as refused:
        model_version_promote(model_version=worse, user=admin_user)

    assert refused.value.reasons == [
        "utkface: age MAE 6.00 years against 5.00",
        "utkface: gender accuracy 90.0% against 95.0%",
        "korean_family_age: distance to the age group 2.50 years against 2.00",
    ]
    assert model_version_active() == shipped
    [utkface, korean, reviewed] = model_version_comparison(candidate=worse, active=shipped)
    assert (utkface.name, set(utkface.worse), set(reviewed.worse)) == ("utkface", {"age_mae", "gender_accuracy"}, set())

    forced = model_version_promote(model_version=worse, user=admin_user, force=True)
    assert (forced.state, forced.promotion_forced) == ("active", True)


def test_a_version_never_measured_against_the_active_one_is_refused(shipped, admin_user):
    other_branch = candidate(None, reviewed=(REVIEWED, REVIEWED))

    with pytest.raises(PromotionRefused, match="never measured on the same photos"):
        model_version_promote(model_version=other_branch, user=admin_user)


def test_roll_back_brings_back_the_version_the_active_one_replaced(shipped, admin_user, django_user_model):
    first = candidate(shipped, "ag-first", reviewed=({**REVIEWED, "age_mae": 4.0}, REVIEWED))
    model_version_promote(model_version=first, user=admin_user)
    second = candidate(first, "ag-second", reviewed=({**REVIEWED, "age_mae": 3.0}, {**REVIEWED, "age_mae": 4.0}))
    model_version_promote(model_version=second, user=admin_user)
    operator = django_user_model.objects.create_superuser("olga", password="not-used")

    restored = model_version_rollback(user=operator)

    assert (restored, restored.promoted_by, restored.promotion_forced) == (first, operator, False)
    assert dict(ModelVersion.objects.values_list("version", "state")) == {
        shipped.version: "retired",
        "ag-first": "active",
        "ag-second": "retired",
    }
    # Promoting the parent of the active version again compares them the other way round.
    assert model_version_comparison(candidate=second, active=first)[0].worse == {}
    assert model_version_promote(model_version=second, user=admin_user) == ModelVersion.objects.get(version="ag-second")


def test_roll_back_without_a_previous_version_is_refused(shipped, admin_user):
    with pytest.raises(PromotionRefused, match="no version served before"):
        model_version_rollback(user=admin_user)


@pytest.fixture
def fresh_pipeline():
    face_pipeline_reset()
    yield
    face_pipeline_reset()


def test_a_worker_process_switches_to_the_active_version_and_keeps_the_old_one_if_it_cannot(
    shipped, small_weights, admin_user, fresh_pipeline, stores, caplog
):
    assert model_version_serve_active() == shipped.version  # already served: nothing to load
    small = model_version_register(
        weights_dir=small_weights, parent=shipped, training_data={}, metrics={}, baseline_metrics={}
    )
    model_version_promote(model_version=small, user=admin_user, force=True)

    assert model_version_serve_active() == small.version
    assert (face_pipeline().model_version, face_pipeline().crop_size) == (small.version, SMALL_CROP)

    model_version_rollback(user=admin_user)
    ModelVersion.objects.filter(pk=shipped.pk).update(version="ag-not-these-weights")
    with caplog.at_level(logging.ERROR):
        assert model_version_serve_active() == small.version
    assert face_pipeline().model_version == small.version
    assert "could not switch from model" in caplog.text


def test_pipeline_tasks_look_for_a_promotion_at_most_every_check_interval(monkeypatch, settings):
    looks = []
    monkeypatch.setattr("apps.predictions.services.model_version_serve_active", lambda: looks.append(1))
    monkeypatch.setattr(signals, "_checked_at", float("-inf"))
    detect, estimate, other = (type("Task", (), {"name": name}) for name in ("faces_detect", "faces_estimate", "x"))

    settings.MODEL_VERSION_CHECK_SECONDS = 3600
    for task in (detect, estimate, detect, other):
        signals.ml_task_serve_active(sender=task)
    assert len(looks) == 1

    settings.MODEL_VERSION_CHECK_SECONDS = 0
    for task in (detect, estimate, other):
        signals.ml_task_serve_active(sender=task)
    assert len(looks) == 3


def test_training_runs_one_at_a_time_and_a_lost_one_is_failed(admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        first = training_run_request(user=admin_user, replay_size=64, epochs=2)
    assert len(queued) == 1
    assert first.parameters["replay_size"] == 64 and first.parameters["epochs"] == 2
    assert first.parameters["train_trunk"] is False and first.requested_by == admin_user

    with pytest.raises(TrainingRefused, match=f"Training run {first.pk} is queued"):
        training_run_request()
    with pytest.raises(ValueError, match="unknown training parameters: epoch"):
        training_run_request(epoch=3)

    TrainingRun.objects.filter(pk=first.pk).update(state="running", started_at=timezone.now() - timedelta(hours=5))
    with django_capture_on_commit_callbacks():
        second = training_run_request()
    first.refresh_from_db()
    assert (first.state, first.error, second.state) == ("failed", TRAINING_LOST, "queued")


def test_a_run_that_cannot_be_queued_says_so_and_a_run_is_trained_once(django_capture_on_commit_callbacks, stores):
    with celery_publishing_to("redis://127.0.0.1:9/0"), django_capture_on_commit_callbacks(execute=True):
        run = training_run_request()
    run.refresh_from_db()
    assert (run.state, run.error) == ("failed", TRAINING_NOT_QUEUED)

    assert model_candidate_train(run_id=run.pk) is None  # not queued (a redelivery, say): left alone
    run.refresh_from_db()
    assert run.state == "failed" and run.started_at is None
