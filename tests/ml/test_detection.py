"""FaceDetector finds the faces it promises, in the caller's pixels (speed lives in bench/)."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ml.detection import Detection, FaceDetector

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # 512 x 512, one face at about x 182, y 64, w 83, h 107


def chips(utkface_dir: Path, count: int, start: int = 0, step: int = 997) -> list[np.ndarray]:
    paths = sorted((utkface_dir / "images").iterdir())[start::step][:count]
    return [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in paths]


def test_importing_the_module_leaves_tensorflow_unloaded():
    code = "import sys, ml.detection; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_astronaut_has_one_face_with_plausible_landmarks(detector, astronaut):
    faces = detector.detect(astronaut)

    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, Detection) and isinstance(face.confidence, float) and face.confidence >= 0.9
    assert len(face.box) == 4 and all(isinstance(v, float) for v in face.box)
    np.testing.assert_allclose(face.box, (182, 64, 83, 107), atol=10)
    assert face.landmarks.shape == (5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    x, y, w, h = face.box
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)


@pytest.mark.parametrize("shape", [(480, 640, 3), (10, 10, 3)])
def test_blank_and_tiny_images_have_no_faces(detector, shape):
    assert detector.detect(np.full(shape, 128, dtype=np.uint8)) == []
    assert detector.detect(np.zeros(shape, dtype=np.uint8)) == []


def test_batch_of_mixed_sizes_matches_one_by_one_in_input_order(detector, astronaut, utkface_dir):
    a, b, c = chips(utkface_dir, 3)
    images = [a, astronaut, np.full((300, 200, 3), 128, np.uint8), b, cv2.resize(astronaut, (640, 427)), c]

    batched = detector.detect_batch(images)

    assert detector.detect_batch([]) == []
    assert len(batched) == len(images)
    for image, faces in zip(images, batched, strict=True):
        alone = detector.detect(image)
        assert len(faces) == len(alone)
        for together, single in zip(faces, alone, strict=True):
            np.testing.assert_allclose(together.box, single.box, atol=1)  # whole pixels
            np.testing.assert_allclose(together.landmarks, single.landmarks, atol=1)
            assert together.confidence == pytest.approx(single.confidence, abs=1e-4)
    assert [len(faces) for faces in batched] == [1, 1, 0, 1, 1, 1]
    assert all(f.confidence >= g.confidence for faces in batched for f, g in zip(faces, faces[1:], strict=False))


def test_group_photo_finds_the_pasted_faces(detector, utkface_dir):
    rng = np.random.default_rng(0)
    photo = np.full((720, 1280, 3), 128, dtype=np.uint8)
    placed = []
    for k, chip in enumerate(chips(utkface_dir, 12, start=7, step=1500)):
        size = int(rng.integers(80, 121))
        x, y = (k % 4) * 320 + int(rng.integers(0, 320 - size)), (k // 4) * 240 + int(rng.integers(0, 240 - size))
        photo[y : y + size, x : x + size] = cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)
        placed.append((x, y, size))

    faces = detector.detect(photo)

    centres = [(f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2) for f in faces]
    on_chip = [[x <= cx < x + s and y <= cy < y + s for x, y, s in placed] for cx, cy in centres]
    assert all(any(hits) for hits in on_chip), "a face was found on the grey background"
    assert sum(any(hits) for hits in zip(*on_chip, strict=True)) >= 11


def test_coordinates_are_in_the_pixels_of_the_image_given(detector, astronaut):
    small = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    large = cv2.resize(small, (600, 600), interpolation=cv2.INTER_CUBIC)  # shrunk again inside the detector

    (on_small,), (on_large,) = detector.detect(small), detector.detect(large)

    np.testing.assert_allclose(np.asarray(on_large.box), 2 * np.asarray(on_small.box), atol=0.1 * on_large.box[2])
    np.testing.assert_allclose(on_large.landmarks, 2 * on_small.landmarks, atol=4)


def test_a_larger_max_short_side_finds_small_faces_in_big_photos(detector, astronaut):
    # The astronaut at 160 px (her face about 26 px) in a 1600 px photo: shrunk to the default
    # 400 px short side the face is 6 px, too small; left at full size it is found, in the photo's pixels.
    canvas = np.full((1600, 1600, 3), 128, np.uint8)
    canvas[700:860, 900:1060] = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)

    assert detector.max_short_side == 400
    assert detector.detect(canvas) == []
    [face] = FaceDetector(max_short_side=1600).detect(canvas)
    x, y, w, h = face.box
    np.testing.assert_allclose((x + w / 2, y + h / 2), (900 + 224 * 160 / 512, 700 + 118 * 160 / 512), atol=5)
