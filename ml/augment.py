"""Training-time damage to aligned face crops, so the model holds up on photos unlike UTKFace chips.

Every function takes one uint8 ``size`` x ``size`` x 3 RGB crop (the output of
:func:`ml.preprocessing.extract_faces`) and a numpy ``Generator``, and returns a new crop of
the same shape and dtype. Photometric damage never moves a pixel; the only geometric ones
are the mirror image and :func:`jitter_landmarks`, which re-frames the face through the
same :func:`ml.alignment.similarity_matrix` that serving uses, as a detector's noisy
landmarks would.

What each imitates: old prints and scans (greyscale, sepia, colour casts, gamma and
contrast, grain), phone and messenger photos (JPEG re-compression at quality 15-95, blur),
small faces in group photos (down to 20-40 px and back up), hands, microphones and
sunglasses (occlusion), and MTCNN's framing (landmark jitter).
"""

from __future__ import annotations

import cv2
import numpy as np

from ml.alignment import EYE_DISTANCE, EYE_Y, similarity_matrix

# Where the five landmarks of a frontal face sit in an aligned crop, as fractions of its side
# (eyes by construction; nose and mouth corners from the typical UTKFace chip).
CANONICAL_LANDMARKS = np.array(
    [
        [0.5 - EYE_DISTANCE / 2, EYE_Y],
        [0.5 + EYE_DISTANCE / 2, EYE_Y],
        [0.5, EYE_Y + 0.22],
        [0.5 - 0.16, EYE_Y + 0.40],
        [0.5 + 0.16, EYE_Y + 0.40],
    ]
)
LANDMARK_JITTER = 0.035  # standard deviation of each landmark's shift, as a fraction of the crop side
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
LUMA = np.array([0.299, 0.587, 0.114])


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def flip(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(crop[:, ::-1])


def jitter_landmarks(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Re-align the face from landmarks shifted the way a detector's are off by a few pixels."""
    size = crop.shape[0]
    noisy = (CANONICAL_LANDMARKS + rng.normal(0.0, LANDMARK_JITTER, CANONICAL_LANDMARKS.shape)) * size
    matrix = similarity_matrix(noisy, size)
    return cv2.warpAffine(crop, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def greyscale(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    grey = crop.astype(np.float32) @ LUMA.astype(np.float32)
    return _to_uint8(np.repeat(grey[:, :, None], 3, axis=2))


def sepia(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A faded brown print, at a random strength."""
    toned = crop.astype(np.float32) @ SEPIA.T.astype(np.float32)
    strength = rng.uniform(0.5, 1.0)
    return _to_uint8(strength * toned + (1 - strength) * crop)


def colour_cast(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-channel gain and offset: aged dyes, tungsten light, a scanner's white balance."""
    gains = rng.uniform(0.7, 1.3, 3)
    offsets = rng.uniform(-25, 25, 3)
    return _to_uint8(crop.astype(np.float32) * gains + offsets)


def gamma_contrast(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gamma = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    contrast = rng.uniform(0.5, 1.5)
    values = 255.0 * (crop.astype(np.float32) / 255.0) ** gamma
    return _to_uint8((values - values.mean()) * contrast + values.mean() + rng.uniform(-20, 20))


def blur(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(0.4, 1.6) * crop.shape[0] / 64
    return cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma)


def noise(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise or film grain, in colour or in luminance only."""
    sigma = rng.uniform(3, 15)
    shape = crop.shape if rng.random() < 0.5 else (*crop.shape[:2], 1)
    return _to_uint8(crop.astype(np.float32) + rng.normal(0.0, sigma, shape))


def jpeg(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(15, 96))
    ok, encoded = cv2.imencode(".jpg", crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        return crop
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1])


def downscale(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face as it is in a group photo: 20-40 px across, enlarged back to the crop size."""
    size = crop.shape[0]
    small = int(rng.integers(20, 41))
    if small >= size:
        return crop
    shrunk = cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(shrunk, (size, size), interpolation=cv2.INTER_LINEAR)


def occlude(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A rectangle of flat colour or noise over 5-25% of the crop, never all of the face."""
    size = crop.shape[0]
    area = rng.uniform(0.05, 0.25) * size * size
    aspect = np.exp(rng.uniform(np.log(0.33), np.log(3.0)))
    height = int(np.clip(np.sqrt(area / aspect), 1, size - 1))
    width = int(np.clip(np.sqrt(area * aspect), 1, size - 1))
    top, left = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
    out = crop.copy()
    if rng.random() < 0.5:
        out[top : top + height, left : left + width] = rng.integers(0, 256, 3, dtype=np.uint8)
    else:
        out[top : top + height, left : left + width] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return out


# (probability, functions): a group applies at most one of its functions, picked at random.
# Order matters: framing first, then colour, then the damage a photo picks up on its way here.
POLICY = (
    (0.5, (flip,)),
    (0.8, (jitter_landmarks,)),
    (0.35, (greyscale, sepia, colour_cast)),
    (0.5, (gamma_contrast,)),
    (0.15, (occlude,)),
    (0.2, (downscale,)),
    (0.2, (blur,)),
    (0.2, (noise,)),
    (0.35, (jpeg,)),
)


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random draw of :data:`POLICY` on one crop."""
    for probability, functions in POLICY:
        if rng.random() < probability:
            crop = functions[int(rng.integers(len(functions)))](crop, rng)
    return crop


def augment_batch(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.stack([augment(crop, rng) for crop in crops])
