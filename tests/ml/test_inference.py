"""The inference facade on a real photo with a known face: scikit-image's astronaut (an adult woman)."""

import time

import numpy as np
import pytest
from skimage import data

from ml.images import UnreadableImageError, load_rgb
from ml.inference import FacePipeline


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline()


def test_astronaut_is_one_adult_woman(pipeline):
    (result,) = pipeline.predict([data.astronaut()])
    assert (result.width, result.height) == (512, 512)
    (face,) = result.faces
    assert face.gender.label == "female" and face.gender.probability > 0.5
    assert 20 <= face.age.value <= 60
    assert face.age.low <= face.age.value <= face.age.high and face.age.level == 0.8
    assert face.detection_confidence > 0.95
    box = face.box  # her face is around x 180-265, y 60-170 in the 512 px photo
    assert 150 < box.x < 220 and 30 < box.y < 100 and 60 < box.width < 140
    assert set(face.landmarks) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert face.model_version == pipeline.model_version
    # She faces the camera, her head a little tilted and lowered, in a sharp, well-lit studio photo.
    assert abs(face.pose.yaw) < 10 and abs(face.pose.roll) < 10 and -25 < face.pose.pitch < 5
    assert face.quality.sharpness > 60 and 50 < face.quality.brightness < 85
    assert face.quality.size == min(box.width, box.height)


def test_predictions_are_deterministic_and_batched_across_photos(pipeline):
    photo = data.astronaut()
    first = pipeline.predict([photo])[0].faces[0]
    assert pipeline.predict([photo])[0].faces[0] == first  # same call, same answer, bit for bit
    together = pipeline.predict([photo, np.ascontiguousarray(photo[:, ::-1])])
    alone, batched = first.age, together[0].faces[0].age  # another batch shape may change float rounding
    assert (batched.value, batched.low, batched.high) == pytest.approx((alone.value, alone.low, alone.high), abs=1e-3)
    assert together[0].faces[0].gender.label == first.gender.label
    assert together[0].faces[0].box == first.box
    assert len(together[1].faces) == 1


def test_a_photo_without_faces_has_no_predictions(pipeline):
    (result,) = pipeline.predict([data.coffee()])
    assert result.faces == []


def test_swapped_colour_channels_change_the_crop(pipeline):
    """The crop keeps RGB order: feeding BGR gives another crop (catches a silent channel swap)."""
    photo = data.astronaut()
    (rgb_face,), (bgr_face,) = pipeline.find_faces([photo, np.ascontiguousarray(photo[..., ::-1])])
    assert np.abs(rgb_face.crop.astype(int) - bgr_face.crop[..., ::-1].astype(int)).mean() < 12
    assert np.abs(rgb_face.crop.astype(int) - bgr_face.crop.astype(int)).mean() > 12


def test_unreadable_bytes_raise_a_clear_error():
    with pytest.raises(UnreadableImageError, match="cannot read the image"):
        load_rgb(b"<html>not a photo</html>")


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    image = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb((tmp_path / "rotated.jpg").read_bytes()).shape == (40, 20, 3)


def test_crops_of_another_size_are_refused_not_reshaped(pipeline):
    size = pipeline.crop_size
    other = np.zeros((9, size // 2 + 8, size // 2 + 8, 3), np.uint8)
    with pytest.raises(ValueError, match="align the faces again"):
        pipeline.estimate(other)


def test_on_a_cpu_the_age_gender_net_runs_on_tflite_with_the_keras_outputs(pipeline, utkface_dir):
    from ml.model import age_distribution
    from ml.tflite import LiteNetwork

    photos = [data.astronaut()] + [load_rgb(path) for path in sorted((utkface_dir / "images").iterdir())[::2000][:12]]
    crops = np.array([face.crop for faces in pipeline.find_faces(photos) for face in faces])
    keras_pipeline = FacePipeline(runtime="keras")

    assert isinstance(pipeline._load_model(), LiteNetwork)  # the default, so this compares two runtimes
    assert len(crops) >= 12
    for batch in (crops, crops[:1], crops[:5]):  # a new batch size plans the interpreter again
        logits, female = pipeline.raw_outputs(batch)
        keras_logits, keras_female = keras_pipeline.raw_outputs(batch)
        np.testing.assert_allclose(age_distribution(logits), age_distribution(keras_logits), atol=1e-4)
        np.testing.assert_allclose(female, keras_female, atol=1e-4)
    with pytest.raises(ValueError, match="runtime"):
        FacePipeline(runtime="onnx")


def test_after_warm_up_the_first_photo_costs_no_loading():
    """What an ml worker process runs when it starts: loading takes seconds, a photo then milliseconds."""
    pipeline = FacePipeline()
    pipeline.warm_up()

    started = time.perf_counter()
    (result,) = pipeline.predict([data.astronaut()])

    assert len(result.faces) == 1
    assert time.perf_counter() - started < 1.0
