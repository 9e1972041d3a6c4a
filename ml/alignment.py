"""Face alignment: one similarity transform from five landmarks to a fixed frame.

Training and serving both call :func:`align_face`, so a face the model sees in
production is framed exactly like the faces it learned from.

The canonical frame puts the eyes on one horizontal line, a fixed distance apart,
with a margin of forehead, hair and chin around them (age cues live there too).
"""

from __future__ import annotations

import cv2
import numpy as np

# Landmark order used everywhere in ml/: left eye, right eye, nose, mouth left, mouth
# right, in image pixels (x, y). "Left" is the left of the image, as MTCNN reports it.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# Where the eyes land in the aligned crop, as fractions of its side: forehead to chin with
# a little margin. Wider framing would reach past the edges of the UTKFace chips the
# model trains on (eye distance ~0.39 of a chip), so training would see mirrored padding
# where serving sees real background.
EYE_Y = 0.36
EYE_DISTANCE = 0.42
# On a frontal face the eye-to-mouth distance is ~1.15x the eye distance. Scaling by the
# larger of the two keeps a turned head (eyes close together in the image) from being
# blown up to fill the crop.
EYE_TO_MOUTH_RATIO = 1.15


def similarity_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 affine matrix that maps image pixels to the aligned ``size`` x ``size`` crop."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye = points[0], points[1]
    eye_center = (left_eye + right_eye) / 2.0
    mouth_center = (points[3] + points[4]) / 2.0

    dx, dy = right_eye - left_eye
    angle = np.arctan2(dy, dx)
    eye_distance = float(np.hypot(dx, dy))
    face_scale = max(eye_distance, float(np.linalg.norm(mouth_center - eye_center)) / EYE_TO_MOUTH_RATIO)
    if face_scale < 1e-6:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")

    scale = EYE_DISTANCE * size / face_scale
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    target_center = np.array([size / 2.0, EYE_Y * size])
    translation = target_center - rotation @ eye_center
    return np.hstack([rotation, translation[:, None]])


def align_face(image_rgb: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """Cut the face out of ``image_rgb`` (H x W x 3, uint8, RGB) as a ``size`` x ``size`` crop.

    A face much larger than the crop is first shrunk with area averaging (a plain warp
    would alias), and pixels outside the photo are filled by reflecting its border, so a
    face at the edge of a photo gets no black band the model never saw in training.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image_rgb.shape}")
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    matrix = similarity_matrix(landmarks, size)
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    if scale < 0.5:
        image_rgb, landmarks = _shrink_around(image_rgb, landmarks, matrix, size, scale)
        matrix = similarity_matrix(landmarks, size)
    return cv2.warpAffine(image_rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _shrink_around(image_rgb, landmarks, matrix, size, scale):
    """Crop the region the aligned face comes from and shrink it to about the crop's scale."""
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
    inverse = cv2.invertAffineTransform(matrix)
    source = transform_points(corners, inverse)
    height, width = image_rgb.shape[:2]
    x0, y0 = np.maximum(np.floor(source.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(source.max(axis=0)).astype(int) + 2, [width, height])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image_rgb, landmarks
    region = image_rgb[y0:y1, x0:x1]
    factor = min(1.0, 2.0 * scale)
    new_size = (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor)))
    shrunk = cv2.resize(region, new_size, interpolation=cv2.INTER_AREA)
    factors = np.array([new_size[0] / (x1 - x0), new_size[1] / (y1 - y0)])
    return shrunk, (landmarks - [x0, y0]) * factors


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to N x 2 points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]
