"""The caption and the annotated photo, from face rows made up here (no model involved)."""

import io

import numpy as np
from PIL import Image

from apps.predictions.models import FaceEstimate
from apps.telegram.replies import (
    BOX_COLOR,
    CAPTION_MAX_CHARS,
    Rect,
    annotated_photo,
    badge_places,
    help_text,
    result_caption,
)


def face(age=34.4, low=28.2, high=41.0, level=0.8, gender="male", probability=0.97, box=(10, 20, 30, 40), index=0):
    x, y, width, height = box
    return FaceEstimate(
        face_index=index,
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
    caption = result_caption(
        [face(), face(age=61.6, low=50, high=70, level=0.5, gender="female", probability=0.62, index=1)]
    )

    assert caption == (
        "2 faces found, numbered on the photo:\n"
        "1. Age 34, 80% likely 28–41; male, 97% likely\n"
        "2. Age 62, 50% likely 50–70; female, 62% likely"
    )
    assert result_caption([face()]).startswith("1 face found:\n1. Age 34")


def test_caption_fits_telegram_and_counts_the_faces_left_out():
    caption = result_caption([face(index=i) for i in range(40)])

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
    caption = result_caption([face(), face(index=1)], faces_found=31)

    assert caption.startswith(
        "Only the 2 largest of the 31 faces found were analysed. Numbered on the photo:\n1. Age 34"
    )
    assert result_caption([face(), face(index=1)], faces_found=2).startswith("2 faces found, numbered on the photo:")


def test_caption_lists_each_face_by_its_number():
    """The number is the face's own (left to right, as the result page shows it), not its place in the list."""
    caption = result_caption([face(index=2, age=20), face(index=5, age=60)])

    assert caption.splitlines()[1:] == [
        "3. Age 20, 80% likely 28–41; male, 97% likely",
        "6. Age 60, 80% likely 28–41; male, 97% likely",
    ]


def badge(photo: Image.Image, box: Rect) -> np.ndarray:
    return np.asarray(photo)[round(box.y) : round(box.bottom), round(box.x) : round(box.right)]


def test_each_box_has_a_badge_with_its_number():
    faces = [face(box=(40, 60, 50, 60)), face(box=(150, 60, 50, 60), index=6)]
    photo = Image.open(io.BytesIO(annotated_photo(jpeg_with_orientation(300, 200, 1), faces)))

    first, second = (badge(photo, Rect(f.box_x, f.box_y - 14, 10, 14)) for f in faces)  # above each box
    for drawn in (first, second):
        assert np.mean([near_box_color(pixel) for pixel in drawn.reshape(-1, 3)]) > 0.4  # a badge
        assert drawn.min() < 80  # with dark digits on it
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 10  # "1" and "7"


def test_badges_stay_inside_the_photo():
    boxes = [Rect(0, 0, 40, 40), Rect(290, 0, 10, 20), Rect(250, 180, 60, 40), Rect(-10, 150, 30, 30)]

    places = badge_places(boxes, [(16, 14)] * 4, (300, 200))

    for place in places:
        assert place.x >= 0 and place.right <= 300 and place.y >= 0 and place.bottom <= 200
    assert (places[0].x, places[0].y) == (0, 0)  # no room above: inside the box's corner
    assert (places[1].x, places[1].y) == (284, 0)  # at the right edge: moved left, onto the box


def test_badges_of_faces_close_together_do_not_cover_one_another():
    boxes = [Rect(100 + 8 * i, 100 + 3 * i, 60, 60) for i in range(5)]  # a tight row, each box over the next

    places = badge_places(boxes, [(16, 14)] * 5, (640, 480))

    assert not any(a.overlaps(b) for i, a in enumerate(places) for b in places[i + 1 :])
    assert all(place.x >= box.x - 16 and place.y <= box.bottom for place, box in zip(places, boxes, strict=True))


def test_help_states_the_retention_period(settings):
    settings.RETENTION_DAYS = 7

    assert "for 7 days, or until you send /forget" in help_text()
    # Photos a reviewer checked stay longer, and /forget loses them with the chat's updates.
    assert "may be kept longer, to train the model: after 7 days /forget no longer finds it" in help_text()
