"""Placing face boxes over a photo, for the upload page and the admin alike."""

from django import template

register = template.Library()

# A box this close to the top of the photo gets its label inside, where it cannot be cut off.
LABEL_INSIDE_BELOW_TOP = 0.08


@register.simple_tag
def face_box(face, upload) -> dict:
    """The box of ``face`` in percent of the upright photo, so it stays on the face at any displayed size.

    Returns ``{"style": CSS, "label_inside": bool}``; boxes reaching past the photo's edges are clipped.
    """
    left = min(max(face.box_x, 0), upload.width)
    top = min(max(face.box_y, 0), upload.height)
    right = min(max(face.box_x + face.box_width, left), upload.width)
    bottom = min(max(face.box_y + face.box_height, top), upload.height)
    style = (
        f"left:{100 * left / upload.width:.3f}%;top:{100 * top / upload.height:.3f}%;"
        f"width:{100 * (right - left) / upload.width:.3f}%;height:{100 * (bottom - top) / upload.height:.3f}%"
    )
    return {"style": style, "label_inside": top / upload.height < LABEL_INSIDE_BELOW_TOP}
