"""Placing face boxes over a photo, for the upload page and the admin alike."""

from django import template

register = template.Library()


@register.simple_tag
def face_box(face, upload) -> dict:
    """The box of ``face`` in percent of the upright photo, so it stays on the face at any displayed size.

    Returns ``{"x", "y", "width", "height": "12.345%"}``, SVG geometry rather
    than a style attribute, which the Content-Security-Policy forbids; boxes reaching past the
    photo's edges are clipped.
    """
    left = min(max(face.box_x, 0), upload.width)
    top = min(max(face.box_y, 0), upload.height)
    right = min(max(face.box_x + face.box_width, left), upload.width)
    bottom = min(max(face.box_y + face.box_height, top), upload.height)
    return {
        "x": f"{100 * left / upload.width:.3f}%",
        "y": f"{100 * top / upload.height:.3f}%",
        "width": f"{100 * (right - left) / upload.width:.3f}%",
        "height": f"{100 * (bottom - top) / upload.height:.3f}%",
    }
