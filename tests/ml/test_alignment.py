import numpy as np
import pytest

from ml.alignment import EYE_DISTANCE, EYE_Y, align_face, similarity_matrix, transform_points

FRONTAL = np.array([[40.0, 50.0], [80.0, 50.0], [60.0, 70.0], [45.0, 95.0], [75.0, 95.0]])


def rotate(points, degrees, center=(60.0, 70.0)):
    theta = np.deg2rad(degrees)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return (points - center) @ rotation.T + center


@pytest.mark.parametrize("degrees", [-40, -10, 0, 15, 35])
@pytest.mark.parametrize("size", [64, 112])
def test_eyes_land_level_at_fixed_distance(degrees, size):
    landmarks = rotate(FRONTAL * 3 + 100, degrees, center=(280, 310))
    eyes = transform_points(landmarks[:2], similarity_matrix(landmarks, size))
    assert eyes[0, 1] == pytest.approx(EYE_Y * size, abs=1e-6)
    assert eyes[1, 1] == pytest.approx(EYE_Y * size, abs=1e-6)
    assert eyes[1, 0] - eyes[0, 0] == pytest.approx(EYE_DISTANCE * size, abs=1e-6)
    assert (eyes[0, 0] + eyes[1, 0]) / 2 == pytest.approx(size / 2, abs=1e-6)


def test_turned_head_is_not_blown_up():
    """Eyes close together (profile) must not zoom the face in: the eye-to-mouth span limits the scale."""
    profile = FRONTAL.copy()
    profile[1, 0] = 50.0  # eyes 10 px apart instead of 40
    frontal_scale = np.hypot(*similarity_matrix(FRONTAL, 64)[0, :2])
    profile_scale = np.hypot(*similarity_matrix(profile, 64)[0, :2])
    assert profile_scale < 1.5 * frontal_scale


def test_degenerate_landmarks_are_refused():
    with pytest.raises(ValueError, match="degenerate"):
        similarity_matrix(np.zeros((5, 2)), 64)


def dots_image(landmarks, shape, radius):
    """A grey image with a white dot at each eye, to find them again after alignment."""
    import cv2

    image = np.full((*shape, 3), 90, dtype=np.uint8)
    for x, y in landmarks[:2]:
        cv2.circle(image, (int(round(x)), int(round(y))), radius, (255, 255, 255), -1)
    return image


@pytest.mark.parametrize("scale", [1.0, 12.0])  # 12x: the area-averaging shrink path
def test_crop_shows_the_eyes_where_the_geometry_says(scale):
    landmarks = FRONTAL * scale + 20 * scale
    image = dots_image(landmarks, (int(200 * scale), int(200 * scale)), radius=int(3 * scale))
    crop = align_face(image, landmarks, 64)
    bright = np.argwhere(crop[..., 0] > 170)
    left, right = bright[bright[:, 1] < 32], bright[bright[:, 1] >= 32]
    expected_y = EYE_Y * 64
    for blob, expected_x in ((left, 32 - EYE_DISTANCE * 32), (right, 32 + EYE_DISTANCE * 32)):
        y, x = blob.mean(axis=0)
        assert abs(y - expected_y) < 1.5 and abs(x - expected_x) < 1.5


def test_crop_bounds_and_dtype_for_a_face_at_the_photo_edge():
    landmarks = FRONTAL - [38, 48]  # left eye almost at the corner: most of the crop lies outside
    image = np.random.default_rng(0).integers(0, 255, (120, 100, 3), dtype=np.uint8)
    crop = align_face(image, landmarks, 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert (crop.reshape(-1, 3) == 0).all(axis=1).mean() < 0.01  # reflected border, no black band


def test_colour_order_is_kept():
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red, in RGB
    crop = align_face(image, FRONTAL + 40, 64)
    assert (crop[..., 0] == 255).all() and (crop[..., 1:] == 0).all()


def test_grayscale_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="RGB"):
        align_face(np.zeros((50, 50), dtype=np.uint8), FRONTAL, 64)
