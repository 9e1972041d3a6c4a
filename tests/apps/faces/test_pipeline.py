import shutil

import pytest

from apps.faces.pipeline import face_pipeline, face_pipeline_reset, face_pipeline_serve


@pytest.fixture
def fresh_pipeline():
    face_pipeline_reset()
    yield
    face_pipeline_reset()


def test_one_pipeline_per_process(model_weights):
    """Workers load the models once, not per task."""
    pipeline = face_pipeline()

    assert face_pipeline() is pipeline
    assert pipeline.weights_dir == model_weights


def test_detection_size_comes_from_the_settings(model_weights, settings, fresh_pipeline):
    settings.DETECTION_MAX_SHORT_SIDE = 1600
    face_pipeline_reset()
    assert face_pipeline().max_short_side == 1600


def test_other_weights_serve_once_warmed_and_the_detector_stays(model_weights, tmp_path, fresh_pipeline):
    old = face_pipeline()
    other = tmp_path / "other"
    shutil.copytree(model_weights, other)

    new = face_pipeline_serve(other)

    assert face_pipeline() is new and new.weights_dir == other and new.model_version == old.model_version
    assert new._detector is old._detector and new._model is not None  # warmed: loaded before it serves


def test_weights_that_do_not_load_leave_the_old_pipeline_serving(model_weights, tmp_path, fresh_pipeline):
    old = face_pipeline()
    broken = tmp_path / "broken"
    shutil.copytree(model_weights, broken)
    (broken / "age_gender.keras").write_bytes(b"not a model")

    with pytest.raises(ValueError):
        face_pipeline_serve(broken)

    assert face_pipeline() is old
