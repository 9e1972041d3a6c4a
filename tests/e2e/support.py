"""Helpers of the browser tests."""

import json
from pathlib import Path

# The width of an image once it has loaded (rejects if it cannot be loaded), for ``locator.evaluate``.
LOADED_WIDTH = "img => img.decode().then(() => img.naturalWidth)"
# The side of the aligned face crops the page shows: the shipped model's input size.
MODEL_CARD_DATA = Path(__file__).resolve().parents[2] / "ml" / "weights" / "model.json"
CROP_SIZE = json.loads(MODEL_CARD_DATA.read_text())["image_size"]
