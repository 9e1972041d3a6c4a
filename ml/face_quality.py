"""How usable a detected face is: its head pose and image quality, as Rekognition reports them, so that
clients can drop faces turned too far, too blurred, too dark or too small to trust the estimates of.

**Pose** (degrees) is approximate: five landmarks cannot give a head's rotation exactly, and faces
differ. It follows Gee & Cipolla's facial-normal idea ("Determining the gaze of faces in images",
Image and Vision Computing 12(10), 1994): the nose tip stands out of the plane of the eyes and mouth,
so turning the head moves it off the line from the eyes' midpoint to the mouth's. With the photo
taken from afar (orthographic projection), after undoing the roll:

- **roll** is the angle of the eye line; > 0 when it slopes down to the photo's right (the head tilted
  clockwise as seen).
- **yaw**: a head turned by yaw moves the nose tip ``NOSE_DEPTH * sin(yaw)`` (in eye distances) off the
  midline, while the eye distance shrinks by ``cos(yaw)``; so ``tan(yaw) = offset / (eye distance *
  NOSE_DEPTH)``. > 0 when the nose points to the photo's right (the person turns to their left).
- **pitch**: tilting moves the nose tip up or down between the eye line and the mouth line; at
  ``FRONTAL_NOSE_HEIGHT`` of the way down the face looks straight ahead, and ``tan(pitch) =
  (FRONTAL_NOSE_HEIGHT - height) * FRONTAL_EYE_MOUTH / NOSE_DEPTH``. > 0 when the face looks up.

The three constants come from MTCNN's landmarks on the 17,628 UTKFace train chips it finds a face in
(``python -m ml.calibrate_quality``; docs/face_quality.md): the frontal values are medians, and
NOSE_DEPTH is fitted to how the eye distance shrinks as the nose moves off the midline (0.5 eye
distances, some 32 mm for a 63 mm one: the anthropometric order). Pitch is the roughest: a person's
own nose length moves it, and half of those faces lie within 7 degrees of the median. Roll is as
exact as the landmarks.

**Quality** is measured on the face in its aligned crop (``ml.alignment``): eyebrows to chin and outer
eye corner to outer eye corner, resized to the crop size of the shipped weights first, so that values
compare across face sizes and weights.

- **sharpness** (0-100): the variance ``v`` of the Laplacian of that grey region, mapped to
  ``100 * v / (v + SHARPNESS_HALF)``: 50 is the median UTKFace train face; 90% of them score 18-79,
  and blurred by a Gaussian of 1 px (2 px) at that scale the median face scores 17 (4).
- **brightness** (0-100): the region's mean luma (BT.601) over 255.
- **size** (px): the detection box's shorter side, in the pixels of the upright photo.
"""

from __future__ import annotations

import cv2
import numpy as np

from ml.alignment import EYE_DISTANCE, EYE_TO_MOUTH_RATIO, EYE_Y
from ml.types import FaceQuality, HeadPose

# Calibrated on UTKFace train (python -m ml.calibrate_quality; docs/face_quality.md).
NOSE_DEPTH = 0.5  # the nose tip in front of the eyes and mouth, in eye distances
FRONTAL_NOSE_HEIGHT = 0.572  # the nose tip's height between the eye line (0) and the mouth line (1)
FRONTAL_EYE_MOUTH = 1.006  # the eye line to mouth distance, in eye distances
SHARPNESS_HALF = 209.5  # the median variance of the Laplacian: sharpness 50

# The crop size quality is measured at: the shipped weights' own (ml/weights/model.json).
QUALITY_CROP_SIZE = 96
# The face in an aligned crop, as fractions of its side: outer eye corners, eyebrows to chin.
FACE_REGION = (
    0.5 - 0.7 * EYE_DISTANCE,
    EYE_Y - 0.5 * EYE_DISTANCE,
    0.5 + 0.7 * EYE_DISTANCE,
    EYE_Y + (EYE_TO_MOUTH_RATIO + 0.25) * EYE_DISTANCE,
)


def pose_cues(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Roll (radians), the nose's offset from the midline over the eye distance, its height between the
    eye and mouth lines, and the eye distance over the eye-to-mouth distance, for N x 5 x 2 landmarks
    (or one face's 5 x 2): what the pose is computed from, and calibrated on."""
    points = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye, nose = points[..., 0, :], points[..., 1, :], points[..., 2, :]
    eye_center = (left_eye + right_eye) / 2
    mouth_center = (points[..., 3, :] + points[..., 4, :]) / 2
    dx, dy = (right_eye - left_eye)[..., 0], (right_eye - left_eye)[..., 1]
    roll = np.arctan2(dy, dx)
    cos, sin = np.cos(roll), np.sin(roll)

    def upright(point):  # the point relative to the eyes' midpoint, with the eye line turned level
        x, y = (point - eye_center)[..., 0], (point - eye_center)[..., 1]
        return x * cos + y * sin, y * cos - x * sin

    nose_x, nose_y = upright(nose)
    mouth_x, mouth_y = upright(mouth_center)
    eye_distance = np.hypot(dx, dy)
    # A mouth on or above the eye line (no real face) gives an extreme pitch, not a division by zero.
    mouth_y = np.maximum(mouth_y, 1e-6)
    height = nose_y / mouth_y
    offset = (nose_x - mouth_x * height) / np.maximum(eye_distance, 1e-6)
    foreshortening = eye_distance / np.hypot(mouth_x, mouth_y)
    return roll, offset, height, foreshortening


def head_pose(landmarks: np.ndarray) -> HeadPose:
    """Yaw, pitch and roll in degrees from one face's five landmarks (5 x 2, ml.alignment.LANDMARK_NAMES order)."""
    roll, offset, height, _ = pose_cues(landmarks)
    yaw = np.arctan(offset / NOSE_DEPTH)
    pitch = np.arctan((FRONTAL_NOSE_HEIGHT - height) * FRONTAL_EYE_MOUTH / NOSE_DEPTH)
    # One decimal: the approximation is nowhere near finer.
    return HeadPose(*(round(float(np.degrees(angle)), 1) for angle in (yaw, pitch, roll)))


def face_region_grey(crop: np.ndarray) -> np.ndarray:
    """The face part (FACE_REGION) of an aligned RGB crop, in grey, at the scale of QUALITY_CROP_SIZE."""
    if crop.shape[0] != QUALITY_CROP_SIZE:
        shrinking = crop.shape[0] > QUALITY_CROP_SIZE
        crop = cv2.resize(
            crop,
            (QUALITY_CROP_SIZE, QUALITY_CROP_SIZE),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        )
    left, top, right, bottom = (round(fraction * QUALITY_CROP_SIZE) for fraction in FACE_REGION)
    return cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)[top:bottom, left:right]


def laplacian_variance(grey: np.ndarray) -> float:
    return float(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F).var())


def face_quality(crop: np.ndarray, box: tuple[float, float, float, float]) -> FaceQuality:
    """Sharpness and brightness (0-100) of an aligned face crop, and the size of its box (x, y, w, h) in pixels."""
    grey = face_region_grey(crop)
    variance = laplacian_variance(grey)
    return FaceQuality(
        sharpness=round(100 * variance / (variance + SHARPNESS_HALF), 1),
        brightness=round(float(grey.mean()) * 100 / 255, 1),
        size=round(min(box[2], box[3])),
    )
