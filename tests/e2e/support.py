"""Helpers of the browser tests."""

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

# The width of an image once it has loaded (rejects if it cannot be loaded), for ``locator.evaluate``.
LOADED_WIDTH = "img => img.decode().then(() => img.naturalWidth)"
# The side of the aligned face crops the page shows: the shipped model's input size.
MODEL_CARD_DATA = Path(__file__).resolve().parents[2] / "ml" / "weights" / "model.json"
CROP_SIZE = json.loads(MODEL_CARD_DATA.read_text())["image_size"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def utkface_chips(utkface_dir: Path, count: int, ages: range, every: int) -> list[np.ndarray]:
    """``count`` chips (200 px RGB faces) of the UTKFace test split's people of ``ages``, every ``every``-th."""
    with open(utkface_dir / "labels.csv", newline="") as labels:
        names = [
            row["filename"] for row in csv.DictReader(labels) if row["split"] == "test" and int(row["age"]) in ages
        ]
    return [np.asarray(Image.open(utkface_dir / "images" / name).convert("RGB")) for name in names[::every][:count]]


def group_photo(size: tuple[int, int], faces: list[tuple[np.ndarray, int, int, int]]) -> bytes:
    """A JPEG of ``size`` (width, height): a grey gradient with each chip pasted at (x, y), ``side`` px square."""
    width, height = size
    gradient = np.linspace(90, 170, width, dtype=np.float32).astype(np.uint8)
    canvas = np.repeat(np.repeat(gradient[None, :, None], height, axis=0), 3, axis=2)
    for chip, x, y, side in faces:
        canvas[y : y + side, x : x + side] = np.asarray(Image.fromarray(chip).resize((side, side), Image.LANCZOS))
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def family_photo(utkface_dir: Path) -> bytes:
    """30 faces, 1500 x 760: two rows of ten adults, and five children in front, each beside an adult. On a
    phone a child's badge would cover the adult's next to it: the page has to move one of them."""
    adults = iter(utkface_chips(utkface_dir, 25, range(18, 71), every=53))
    children = iter(utkface_chips(utkface_dir, 5, range(1, 10), every=37))
    back = [(next(adults), i * 150 + 25, 20 + i % 2 * 12, 108) for i in range(10)]
    middle = [(next(adults), i * 147 + 8, 250 + i % 3 * 10, 126) for i in range(10)]
    front = []
    for i in range(5):
        front += [(next(children), i * 300 + 30, 560, 58), (next(adults), i * 300 + 94, 540, 140)]
    return group_photo((1500, 760), back + middle + front)


def team_photo(utkface_dir: Path) -> bytes:
    """12 faces, 1280 x 720, in three rows of four of different sizes; in the last row a child beside each adult."""
    adults = iter(utkface_chips(utkface_dir, 10, range(18, 71), every=71))
    children = iter(utkface_chips(utkface_dir, 2, range(1, 10), every=53))
    faces = [(next(adults), i * 320 + 40 + i % 2 * 60, 30 + i % 2 * 20, 150 - i * 10) for i in range(4)]
    faces += [(next(adults), i * 320 + 110, 260 + i % 2 * 15, 120 + i * 8) for i in range(4)]
    for i in range(2):
        faces += [(next(children), i * 640 + 70, 512, 50), (next(adults), i * 640 + 122, 500, 160)]
    return group_photo((1280, 720), faces)
