"""What the bot says: fixed texts, the caption listing each face, and the photo with the faces drawn on it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from PIL import Image, ImageDraw, ImageFont, ImageOps
from pillow_heif import register_heif_opener

from apps.predictions.models import FaceEstimate
from apps.telegram.bot_api import MAX_DOWNLOAD_BYTES
from apps.uploads.selectors import upload_faces_notice

register_heif_opener()  # stored photos may be HEIC

HELP = (
    "Send me a photo and I will answer with every face in it: the estimated age, the range it most "
    "likely falls in, and the gender, each with how sure the model is. Images sent as files work too "
    "(up to {max_size}).\n\n"
    "Privacy: I keep the photos you send, the faces found in them and the estimates for {retention_days} "
    "days, or until you send /forget, which deletes all of it for this chat. The people who run this "
    "bot can look at them to check the estimates. A photo with a face they checked may be kept longer, "
    "to train the model: after {retention_days} days /forget no longer finds it, and it cannot take "
    "anything out of a model already trained."
)
HINT = "Send me a photo (or an image file) and I will estimate the age and gender of every face in it. /help says more."
NOT_AN_IMAGE = "That file is not an image. Send a photo, or an image file (JPEG, PNG, WebP, HEIC ...)."
TOO_LARGE_FOR_TELEGRAM = (
    "This file is larger than 20 MB, the most a bot may download from Telegram. "
    "Send it as a photo instead: Telegram makes it smaller."
)
NOT_DOWNLOADED = "Telegram did not let me download this file. Please send it again."
NO_FACE = "No face found in this photo."
COULD_NOT_READ = "Could not read the file as a photo."
FORGOTTEN = "Deleted {count} photo(s) this chat sent, with the faces found in them and the estimates."

CAPTION_MAX_CHARS = 1024  # Telegram's limit for photo captions
PHOTO_MAX_SIDE = 1280  # what Telegram shows anyway; keeps the upload small
BOX_COLOR = (255, 214, 0)


def help_text() -> str:
    """HELP with the largest file accepted: Telegram's download limit or ours, whichever is lower."""
    return HELP.format(
        max_size=filesizeformat(min(MAX_DOWNLOAD_BYTES, settings.MAX_UPLOAD_BYTES)),
        retention_days=settings.RETENTION_DAYS,
    )


def result_caption(faces: Sequence[FaceEstimate], faces_found: int | None = None) -> str:
    """One line per face, by its number (left to right, as on the photo and the result page); faces that do
    not fit in a caption are counted, and a crowd cut to the largest faces (MAX_FACES_PER_PHOTO) is said so.

    ``faces_found`` defaults to what the faces' upload recorded.
    """
    if faces_found is None and faces and faces[0].upload_id is not None:
        faces_found = faces[0].upload.faces_found
    notice = upload_faces_notice(faces_found=faces_found, analysed=len(faces))
    if notice:
        text = f"{notice} Numbered on the photo:"
    else:
        text = "1 face found:" if len(faces) == 1 else f"{len(faces)} faces found, numbered on the photo:"
    for shown, face in enumerate(faces):
        line = (
            f"{face.number}. Age {face.age_value:.0f}, {face.age_level:.0%} likely "
            f"{face.age_low:.0f}–{face.age_high:.0f}; {face.gender_label}, {face.gender_probability:.0%} likely"
        )
        remaining = len(faces) - shown
        tail = f"\n… and {remaining} more."
        if len(text) + 1 + len(line) + (len(tail) if remaining > 1 else 0) > CAPTION_MAX_CHARS:
            return text + tail
        text += "\n" + line
    return text


def annotated_photo(image_bytes: bytes, faces: Sequence[FaceEstimate]) -> bytes:
    """The upright photo (boxes are in upright pixels), at most PHOTO_MAX_SIDE, each face boxed with a badge
    giving its number, as the caption and the result page number it; JPEG."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(image_bytes))).convert("RGB")
    scale = min(1.0, PHOTO_MAX_SIDE / max(image.size))
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    side = max(image.size)
    line_width = max(2, round(side / 300))
    font = ImageFont.load_default(size=max(12, round(side / 40)))
    padding = line_width
    draw = ImageDraw.Draw(image)
    boxes = [
        Rect(face.box_x * scale, face.box_y * scale, face.box_width * scale, face.box_height * scale) for face in faces
    ]
    for box in boxes:
        draw.rectangle((box.x, box.y, box.right, box.bottom), outline=BOX_COLOR, width=line_width)
    labels = [str(face.number) for face in faces]
    text_boxes = [draw.textbbox((0, 0), label, font=font) for label in labels]
    sizes = [(right - left + 2 * padding, bottom - top + 2 * padding) for left, top, right, bottom in text_boxes]
    # After every box, so that no box is drawn over a badge.
    for badge, label, (text_left, text_top, _, _) in zip(
        badge_places(boxes, sizes, image.size), labels, text_boxes, strict=True
    ):
        draw.rectangle((badge.x, badge.y, badge.right, badge.bottom), fill=BOX_COLOR)
        draw.text((badge.x + padding - text_left, badge.y + padding - text_top), label, fill=(0, 0, 0), font=font)
    output = io.BytesIO()
    image.save(output, format="JPEG", quality=88)
    return output.getvalue()


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    def overlaps(self, other: Rect) -> bool:
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom


def badge_places(
    boxes: Sequence[Rect], sizes: Sequence[tuple[float, float]], image_size: tuple[int, int]
) -> list[Rect]:
    """Where each box's badge goes: wholly inside the photo, and clear of the badges placed before it where
    it can be. The first of these places that is clear wins: above the box's top left corner, inside it,
    inside its top right corner, inside its bottom left one, below it; then down the box's left edge."""
    placed: list[Rect] = []
    for box, (width, height) in zip(boxes, sizes, strict=True):
        corners = [
            (box.x, box.y - height),
            (box.x, box.y),
            (box.right - width, box.y),
            (box.x, box.bottom - height),
            (box.x, box.bottom),
        ]
        lower = [(box.x, box.y + step * height) for step in range(1, int(box.height / height))]
        candidates = [_inside(Rect(x, y, width, height), image_size) for x, y in corners + lower]
        placed.append(next((c for c in candidates if not any(c.overlaps(p) for p in placed)), candidates[0]))
    return placed


def _inside(badge: Rect, image_size: tuple[int, int]) -> Rect:
    """The badge moved as little as needed to be wholly inside the photo."""
    x = min(max(badge.x, 0), max(image_size[0] - badge.width, 0))
    y = min(max(badge.y, 0), max(image_size[1] - badge.height, 0))
    return Rect(x, y, badge.width, badge.height)
