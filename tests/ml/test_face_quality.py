"""Head pose and quality on synthetic faces: landmarks projected from a 3D face at known angles, and crops
made sharp, blurred, bright or dark on purpose."""

from dataclasses import astuple

import cv2
import numpy as np
import pytest

from ml.alignment import align_face
from ml.calibrate_quality import calibrate
from ml.face_quality import (
    FRONTAL_EYE_MOUTH,
    FRONTAL_NOSE_HEIGHT,
    NOSE_DEPTH,
    QUALITY_CROP_SIZE,
    face_quality,
    head_pose,
    pose_cues,
)

# The face model ml.face_quality assumes, in eye distances: eyes at y 0, mouth corners below, the
# nose tip between them and NOSE_DEPTH towards the camera (z).
FACE_3D = np.array(
    [
        [-0.5, 0.0, 0.0],
        [0.5, 0.0, 0.0],
        [0.0, FRONTAL_NOSE_HEIGHT * FRONTAL_EYE_MOUTH, NOSE_DEPTH],
        [-0.4, FRONTAL_EYE_MOUTH, 0.0],
        [0.4, FRONTAL_EYE_MOUTH, 0.0],
    ]
)


def photographed(yaw=0.0, pitch=0.0, roll=0.0, scale=60.0, at=(300.0, 200.0)) -> np.ndarray:
    """The five landmarks of FACE_3D turned by these angles (degrees) and seen from afar, in image pixels."""
    yaw, pitch, roll = np.radians([yaw, pitch, roll])
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    # Looking up brings the nose (towards the camera) up the image (y grows downwards).
    tilt = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    flat = (FACE_3D @ (turn @ tilt).T)[:, :2]
    spin = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    return flat @ spin.T * scale + at


def mirrored(landmarks: np.ndarray, width: float = 640.0) -> np.ndarray:
    """The landmarks of the mirrored photo: x flipped, and the left and right points swapped (image left)."""
    flipped = landmarks * [-1, 1] + [width, 0]
    return flipped[[1, 0, 2, 4, 3]]


def test_a_frontal_face_is_straight_ahead():
    assert astuple(head_pose(photographed())) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("roll", [-60, -15, 0, 7, 30, 89])
def test_roll_is_the_eye_lines_angle_and_leaves_yaw_and_pitch(roll):
    level = head_pose(photographed(yaw=20, pitch=-10))

    pose = head_pose(photographed(yaw=20, pitch=-10, roll=roll))

    assert pose.roll == pytest.approx(roll, abs=0.05)
    assert (pose.yaw, pose.pitch) == pytest.approx((level.yaw, level.pitch), abs=0.05)
    assert (level.yaw, level.pitch) == pytest.approx((20, -10), abs=2)  # both at once: about right


@pytest.mark.parametrize("yaw", [-60, -30, -5, 10, 45])
def test_yaw_of_a_turned_head(yaw):
    pose = head_pose(photographed(yaw=yaw))

    assert pose.yaw == pytest.approx(yaw, abs=0.05)
    assert (pose.pitch, pose.roll) == pytest.approx((0, 0), abs=0.05)


@pytest.mark.parametrize("pitch", [-40, -10, 15, 35])
def test_pitch_of_a_tilted_head(pitch):
    pose = head_pose(photographed(pitch=pitch))

    assert pose.pitch == pytest.approx(pitch, abs=0.05)
    assert (pose.yaw, pose.roll) == pytest.approx((0, 0), abs=0.05)


def test_a_head_turned_to_the_photos_right_has_positive_yaw():
    right = photographed(yaw=25)
    assert right[2, 0] > (right[0, 0] + right[1, 0]) / 2  # the nose points right
    assert head_pose(right).yaw > 0


@pytest.mark.parametrize("angles", [(25, 10, 5), (-40, -15, -20), (3, 30, 12)])
def test_a_mirrored_face_has_the_opposite_yaw_and_roll_and_the_same_pitch(angles):
    landmarks = photographed(*angles)

    pose, mirror = head_pose(landmarks), head_pose(mirrored(landmarks))

    assert (mirror.yaw, mirror.pitch, mirror.roll) == pytest.approx((-pose.yaw, pose.pitch, -pose.roll), abs=0.05)


def test_pose_does_not_depend_on_where_the_face_is_or_its_size():
    near = head_pose(photographed(yaw=20, pitch=8, roll=-5, scale=200, at=(900, 700)))
    far = head_pose(photographed(yaw=20, pitch=8, roll=-5, scale=12, at=(30, 40)))

    assert astuple(near) == pytest.approx(astuple(far), abs=0.05)


def test_the_cues_of_many_faces_are_those_of_each():
    batch = np.stack([photographed(yaw=10), photographed(pitch=-20, roll=40)])

    for cue, one, other in zip(pose_cues(batch), pose_cues(batch[0]), pose_cues(batch[1]), strict=True):
        np.testing.assert_allclose(cue, [one, other])


def face_crop(size: int = QUALITY_CROP_SIZE) -> np.ndarray:
    """A textured, mid-grey "face": smoothed noise with the detail of skin and hair."""
    noise = np.random.default_rng(3).normal(128, 40, (size, size, 3))
    return cv2.GaussianBlur(noise, (0, 0), 0.7).clip(0, 255).astype(np.uint8)


BOX = (10.0, 20.0, 83.0, 107.0)


def test_a_blurred_face_is_less_sharp():
    sharp = face_crop()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5)

    assert face_quality(blurred, BOX).sharpness < face_quality(sharp, BOX).sharpness - 20


def test_a_darker_face_is_less_bright():
    crop = face_crop()
    dark = (crop * 0.4).astype(np.uint8)

    bright, darker = face_quality(crop, BOX).brightness, face_quality(dark, BOX).brightness
    assert darker < bright
    assert bright == pytest.approx(50, abs=3) and darker == pytest.approx(20, abs=2)


def test_quality_is_on_0_to_100_and_size_is_the_boxes_shorter_side():
    black, white = np.zeros((96, 96, 3), np.uint8), np.full((96, 96, 3), 255, np.uint8)

    assert astuple(face_quality(black, BOX)) == (0.0, 0.0, 83)
    assert astuple(face_quality(white, (0, 0, 240.6, 200.4))) == (0.0, 100.0, 200)
    assert 0 < face_quality(face_crop(), BOX).sharpness < 100


def test_quality_compares_across_crop_sizes():
    """Crops aligned for other weights are measured at the shipped weights' scale."""
    photo = cv2.resize(face_crop(256), (640, 480))
    landmarks = photographed()
    small, large = align_face(photo, landmarks, QUALITY_CROP_SIZE), align_face(photo, landmarks, 160)

    a, b = face_quality(small, BOX), face_quality(large, BOX)
    assert a.sharpness == pytest.approx(b.sharpness, abs=5)
    assert a.brightness == pytest.approx(b.brightness, abs=1)


def test_calibration_recovers_the_face_it_is_given():
    """Faces of the model above, turned every way: the fit finds its nose depth and frontal proportions."""
    rng = np.random.default_rng(0)
    angles = rng.normal(0, [20, 8, 5], (400, 3))
    landmarks = np.stack([photographed(*face) for face in angles])
    crops = np.stack([face_crop()] * 5)

    result = calibrate(landmarks, crops)

    assert result["NOSE_DEPTH"] == pytest.approx(NOSE_DEPTH, abs=0.02)
    assert result["FRONTAL_EYE_MOUTH"] == pytest.approx(FRONTAL_EYE_MOUTH, abs=0.02)
    assert result["FRONTAL_NOSE_HEIGHT"] == pytest.approx(FRONTAL_NOSE_HEIGHT, abs=0.02)
    assert result["sharpness_blurred_2px"] < result["sharpness_blurred_1px"] < 50
