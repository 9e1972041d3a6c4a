"""What the bot says: fixed texts, the caption listing each face, and the photo with the faces drawn on it."""

import io
from collections.abc import Sequence

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
    """One line per face, numbered as on the photo; faces that do not fit in a caption are counted, and
    a crowd cut to the largest faces (MAX_FACES_PER_PHOTO) is said so.

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
            f"{shown + 1}. Age {face.age_value:.0f}, {face.age_level:.0%} likely "
            f"{face.age_low:.0f}–{face.age_high:.0f}; {face.gender_label}, {face.gender_probability:.0%} likely"
        )
        remaining = len(faces) - shown
        tail = f"\n… and {remaining} more."
        if len(text) + 1 + len(line) + (len(tail) if remaining > 1 else 0) > CAPTION_MAX_CHARS:
            return text + tail
        text += "\n" + line
    return text


def annotated_photo(image_bytes: bytes, faces: Sequence[FaceEstimate]) -> bytes:
    """The upright photo (boxes are in upright pixels), at most PHOTO_MAX_SIDE, each face boxed and labelled; JPEG."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(image_bytes))).convert("RGB")
    scale = min(1.0, PHOTO_MAX_SIDE / max(image.size))
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    side = max(image.size)
    line_width = max(2, round(side / 300))
    font = ImageFont.load_default(size=max(12, round(side / 40)))
    padding = line_width
    draw = ImageDraw.Draw(image)
    for number, face in enumerate(faces, start=1):
        left, top = face.box_x * scale, face.box_y * scale
        right, bottom = left + face.box_width * scale, top + face.box_height * scale
        draw.rectangle((left, top, right, bottom), outline=BOX_COLOR, width=line_width)
        label = f"{number}: {face.age_value:.0f} {face.gender_label[0].upper()}"
        text_left, text_top, text_right, text_bottom = draw.textbbox((0, 0), label, font=font)
        label_height = text_bottom - text_top + 2 * padding
        # Above the box, or inside its top edge when the face touches the top of the photo.
        label_top = top - label_height if top >= label_height else top
        draw.rectangle(
            (left, label_top, left + text_right - text_left + 2 * padding, label_top + label_height), fill=BOX_COLOR
        )
        draw.text((left + padding - text_left, label_top + padding - text_top), label, fill=(0, 0, 0), font=font)
    output = io.BytesIO()
    image.save(output, format="JPEG", quality=88)
    return output.getvalue()
