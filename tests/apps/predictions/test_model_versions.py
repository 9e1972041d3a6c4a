"""Weights that change between detection and estimation (a deploy mid-analysis): faces are cut again, never reshaped."""

import pytest
from bson import ObjectId
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.faces.pipeline import face_pipeline, face_pipeline_reset
from apps.faces.services import PHOTO_GONE_FOR_NEW_MODEL, faces_detect
from apps.predictions.models import FaceEstimate
from apps.predictions.services import faces_estimate
from apps.uploads.models import Upload
from apps.uploads.selectors import upload_read_image
from apps.uploads.services import upload_create
from ml.images import load_rgb
from ml.inference import FacePipeline

SMALL_CROP = 48


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """A second weights folder with another input size than the shipped one (untrained: only sizes matter)."""
    import keras

    from ml.inference import write_model
    from ml.model import build_model

    keras.utils.set_random_seed(7)
    directory = tmp_path_factory.mktemp("small-weights")
    write_model(build_model(SMALL_CROP), directory, SMALL_CROP, 1.0, {})
    return directory


@pytest.fixture
def use_weights(settings):
    """Switch the worker's weights, as a deploy restarting the worker would."""

    def switch(directory):
        settings.ML_WEIGHTS_DIR = directory
        face_pipeline_reset()
        return face_pipeline()

    yield switch
    face_pipeline_reset()


@pytest.fixture
def upload(db, one_face_jpeg) -> Upload:
    return upload_create(image=SimpleUploadedFile("a.jpg", one_face_jpeg), channel=Upload.Channel.API)


@pytest.mark.parametrize("first", ["small", "shipped"])
def test_faces_cropped_for_other_weights_are_cut_again_from_the_photo(
    first, upload, faces, model_weights, small_weights, use_weights
):
    detection_weights, estimation_weights = (
        (small_weights, model_weights) if first == "small" else (model_weights, small_weights)
    )
    detecting = use_weights(detection_weights)
    face_ids = faces_detect(upload_id=str(upload.pk))
    stored = faces.find_one({"_id": ObjectId(face_ids[0])})
    assert (stored["crop_size"], stored["model_version"]) == (detecting.crop_size, detecting.model_version)

    estimating = use_weights(estimation_weights)
    assert estimating.crop_size != detecting.crop_size
    faces_estimate(face_ids=face_ids, upload_id=str(upload.pk))

    upload.refresh_from_db()
    assert upload.status == Upload.Status.DONE
    [estimate] = FaceEstimate.objects.filter(upload=upload)
    assert estimate.model_version == estimating.model_version
    # The same as these weights give when they do both steps themselves: the face was aligned
    # anew at their size from the stored photo, not resized from the other crop.
    [expected] = FacePipeline(estimation_weights).predict([load_rgb(upload_read_image(upload=upload))])[0].faces
    assert estimate.age_value == pytest.approx(expected.age.value, abs=1e-4)
    assert estimate.gender_probability == pytest.approx(expected.gender.probability, abs=1e-5)
    document = faces.find_one({"_id": ObjectId(face_ids[0])})
    assert (document["crop_size"], document["model_version"]) == (estimating.crop_size, estimating.model_version)
    assert document["raw"]["model_version"] == estimating.model_version


def test_crops_of_the_right_size_are_used_as_stored(upload, faces, model_weights, use_weights):
    use_weights(model_weights)
    face_ids = faces_detect(upload_id=str(upload.pk))
    upload.image.storage.delete(upload.image.name)  # not needed: nothing has to be cut again

    faces_estimate(face_ids=face_ids, upload_id=str(upload.pk))

    upload.refresh_from_db()
    assert upload.status == Upload.Status.DONE
    assert FaceEstimate.objects.filter(upload=upload).count() == len(face_ids) == 1


def test_new_weights_and_a_lost_photo_fail_the_upload_with_a_reason(
    upload, faces, model_weights, small_weights, use_weights
):
    use_weights(model_weights)
    face_ids = faces_detect(upload_id=str(upload.pk))
    before = faces.find_one({"_id": ObjectId(face_ids[0])})
    upload.image.storage.delete(upload.image.name)

    use_weights(small_weights)
    faces_estimate(face_ids=face_ids, upload_id=str(upload.pk))

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason) == (Upload.Status.FAILED, PHOTO_GONE_FOR_NEW_MODEL)
    assert not FaceEstimate.objects.filter(upload=upload).exists()
    after = faces.find_one({"_id": ObjectId(face_ids[0])})
    assert after["crop_png"] == before["crop_png"] and after["crop_size"] == before["crop_size"]
