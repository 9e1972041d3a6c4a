"""The caption and the annotated photo, from face rows made up here (no model involved)."""

import io

import numpy as np
from PIL import Image

from apps.predictions.models import FaceEstimate
from apps.telegram.replies import BOX_COLOR, CAPTION_MAX_CHARS, annotated_photo, help_text, result_caption


def face(age=34.4, low=28.2, high=41.0, level=0.8, gender="male", probability=0.97, box=(10, 20, 30, 40)):
    x, y, width, height = box
    return FaceEstimate(
        age_value=age,
        age_low=low,
        age_high=high,
        age_level=level,
        gender_label=gender,
        gender_probability=probability,
        box_x=x,
        box_y=y,
        box_width=width,
        box_height=height,
    )


def test_caption_gives_age_interval_and_gender_with_probabilities():
    caption = result_caption([face(), face(age=61.6, low=50, high=70, level=0.5, gender="female", probability=0.62)])

    assert caption == (
        "2 faces found, numbered on the photo:\n"
        "1. Age 34, 80% likely 28–41; male, 97% likely\n"
        "2. Age 62, 50% likely 50–70; female, 62% likely"
    )
    assert result_caption([face()]).startswith("1 face found:\n1. Age 34")


def test_caption_fits_telegram_and_counts_the_faces_left_out():
    caption = result_caption([face() for _ in range(40)])

    assert len(caption) <= CAPTION_MAX_CHARS
    lines = caption.splitlines()
    listed = len(lines) - 2
    assert lines[-1] == f"… and {40 - listed} more."
    assert lines[-2].startswith(f"{listed}. Age")


def jpeg_with_orientation(width: int, height: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 40, 40)).save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def near_box_color(pixel) -> bool:
    """Yellow as BOX_COLOR, give or take JPEG's blur."""
    return all(abs(int(a) - b) <= 100 for a, b in zip(pixel, BOX_COLOR, strict=True))


def test_boxes_are_drawn_on_the_upright_photo():
    # Stored 300 x 200 with "rotate 90" in EXIF: the upright photo, where boxes live, is 200 x 300.
    photo = Image.open(io.BytesIO(annotated_photo(jpeg_with_orientation(300, 200, 6), [face(box=(50, 200, 60, 60))])))

    assert (photo.format, photo.size) == ("JPEG", (200, 300))
    pixels = np.asarray(photo)
    assert near_box_color(pixels[230, 51])  # left edge of the box, in upright coordinates
    assert near_box_color(pixels[259, 80])  # bottom edge
    assert not near_box_color(pixels[230, 80])  # inside


def test_large_photos_are_scaled_down_with_their_boxes():
    photo = Image.open(
        io.BytesIO(annotated_photo(jpeg_with_orientation(2560, 1280, 1), [face(box=(1000, 600, 400, 400))]))
    )

    assert photo.size == (1280, 640)
    assert near_box_color(np.asarray(photo)[400, 501])


def test_caption_says_when_only_the_largest_faces_were_analysed():
    caption = result_caption([face(), face()], faces_found=31)

    assert caption.startswith(
        "Only the 2 largest of the 31 faces found were analysed. Numbered on the photo:\n1. Age 34"
    )
    assert result_caption([face(), face()], faces_found=2).startswith("2 faces found, numbered on the photo:")


def test_help_states_the_retention_period(settings):
    settings.RETENTION_DAYS = 7

    assert "for 7 days, or until you send /forget" in help_text()
    # Photos a reviewer checked stay longer, and /forget loses them with the chat's updates.
    assert "may be kept longer, to train the model: after 7 days /forget no longer finds it" in help_text()
