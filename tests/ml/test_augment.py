"""Each augmentation keeps the crop's shape, dtype and geometry (or moves it as it says)."""

import numpy as np
import pytest

from ml import augment
from ml.alignment import EYE_DISTANCE, EYE_Y

SIZE = 64
PHOTOMETRIC = [
    augment.greyscale,
    augment.sepia,
    augment.colour_cast,
    augment.gamma_contrast,
    augment.blur,
    augment.noise,
    augment.jpeg,
    augment.downscale,
]


def marked_crop() -> np.ndarray:
    """A mid-grey crop with two bright dots where the aligned eyes are."""
    crop = np.full((SIZE, SIZE, 3), 90, np.uint8)
    for x in (0.5 - EYE_DISTANCE / 2, 0.5 + EYE_DISTANCE / 2):
        cx, cy = round(x * SIZE), round(EYE_Y * SIZE)
        crop[cy - 2 : cy + 3, cx - 2 : cx + 3] = 250
    return crop


def bright_centroid(crop: np.ndarray, half: str) -> np.ndarray:
    """Centroid of the brightest pixels in the left or right half (an eye's position)."""
    grey = crop.astype(np.float64).mean(axis=2)
    mask = np.zeros_like(grey, dtype=bool)
    columns = slice(0, SIZE // 2) if half == "left" else slice(SIZE // 2, SIZE)
    region = grey[:, columns]
    mask[:, columns] = region >= np.percentile(region, 99)
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("function", [*PHOTOMETRIC, augment.occlude, augment.flip, augment.jitter_landmarks])
@pytest.mark.parametrize("seed", range(5))
def test_shape_and_dtype_are_kept(function, seed):
    out = function(marked_crop(), np.random.default_rng(seed))
    assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("function", PHOTOMETRIC)
@pytest.mark.parametrize("seed", range(5))
def test_photometric_damage_leaves_the_eyes_where_they_were(function, seed):
    crop = marked_crop()
    out = function(crop, np.random.default_rng(seed))
    for half in ("left", "right"):
        assert np.linalg.norm(bright_centroid(out, half) - bright_centroid(crop, half)) < 1.5


def test_greyscale_and_sepia_change_colour_not_layout():
    rng = np.random.default_rng(0)
    colourful = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    grey = augment.greyscale(colourful, rng)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    toned = augment.sepia(grey, rng).astype(int)
    assert (toned[..., 0] >= toned[..., 2]).all() and toned[..., 0].mean() > toned[..., 2].mean() + 10  # warm


def test_downscale_loses_detail_like_a_small_face():
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    out = augment.downscale(texture, rng).astype(np.float64)
    assert np.abs(np.diff(out, axis=1)).mean() < 0.5 * np.abs(np.diff(texture.astype(np.float64), axis=1)).mean()


def test_jpeg_quality_range_reaches_heavy_compression():
    crop = marked_crop()
    crop[:, :, 0] = np.linspace(0, 255, SIZE, dtype=np.uint8)[None, :]  # a gradient and two sharp dots
    errors = [np.abs(augment.jpeg(crop, np.random.default_rng(s)).astype(int) - crop).mean() for s in range(20)]
    assert max(errors) > 2 * min(errors) > 0


def test_occlusion_covers_part_of_the_crop_never_all():
    crop = marked_crop()
    for seed in range(20):
        changed = (augment.occlude(crop, np.random.default_rng(seed)) != crop).any(axis=2).mean()
        assert changed <= 0.3


def test_flip_mirrors_the_eyes():
    crop = marked_crop()
    crop[20:24, 5:9] = 0  # break the symmetry
    out = augment.flip(crop, np.random.default_rng(0))
    assert np.array_equal(out, crop[:, ::-1])


def test_landmark_jitter_moves_the_eyes_a_little_and_keeps_them_apart():
    crop = marked_crop()
    shifts = []
    for seed in range(30):
        out = augment.jitter_landmarks(crop, np.random.default_rng(seed))
        left, right = bright_centroid(out, "left"), bright_centroid(out, "right")
        shifts.append(np.linalg.norm(left - bright_centroid(crop, "left")))
        distance = np.linalg.norm(right - left)
        assert 0.6 * EYE_DISTANCE * SIZE < distance < 1.4 * EYE_DISTANCE * SIZE
    assert 0.3 < np.mean(shifts) < 0.15 * SIZE  # moved, by a detector's few pixels, not across the face


def test_canonical_landmarks_align_to_the_identity():
    matrix = augment.similarity_matrix(augment.CANONICAL_LANDMARKS * SIZE, SIZE)
    assert np.allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_the_policy_is_reproducible_and_varied():
    crops = np.stack([marked_crop()] * 8)
    first = augment.augment_batch(crops, np.random.default_rng(7))
    again = augment.augment_batch(crops, np.random.default_rng(7))
    assert np.array_equal(first, again)
    assert len({row.tobytes() for row in first}) > 4
