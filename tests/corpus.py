"""Hostile and unusual photos, made by code (nothing downloaded): each with the outcome Mairror owes it.

A ``Case`` is either accepted (``code`` None: the analysis ends done with ``faces`` faces, or at least
``min_faces`` for the crowd) or refused at upload with a specific ``code`` (the uploads app's
``UploadRejected`` codes) and a message containing ``words``. Accepted cases made from the astronaut
(skimage.data.astronaut, one face) say where its face's centre must be in the upright photo.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import skimage.data
from PIL import ExifTags, Image

# Where MTCNN finds the astronaut's face in skimage.data.astronaut() (512 x 512): centre of x 182, y 64, w 83, h 107.
ASTRONAUT_FACE_CENTER = (224, 118)
# Metadata that must not survive into the stored copy.
SECRET_COMMENT = b"corpus-secret-comment"
SECRET_XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><corpus>corpus-secret-xmp</corpus></x:xmpmeta>'
GPS_LATITUDE = (52.0, 31.0, 12.5)
# EXIF orientation -> what was done to the upright photo to get the stored pixels (the inverse of
# what a viewer does to show it upright, see ml.images.UPRIGHT).
STORED_FROM_UPRIGHT = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Case:
    name: str
    description: str  # the "input" column of docs/hardening/input.md
    data: bytes
    mime: str  # what a client claims it is (Telegram documents carry it); never trusted
    code: str | None = None  # refused at upload with this code; None: accepted
    words: str = ""  # part of the refusal's message
    faces: int | None = None  # accepted: exactly this many faces found ...
    min_faces: int | None = None  # ... or at least this many (a crowd)
    face_center: tuple[float, float] | None = None  # accepted: the one face's centre in the upright photo
    size: tuple[int, int] | None = None  # accepted: the upright width and height
    has_metadata: bool = False  # the original carries EXIF with GPS, XMP and a comment
    tags: tuple[str, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        return self.code is None

    @property
    def expected(self) -> str:
        if self.code:
            return f"refused: `{self.code}`"
        if self.min_faces:
            return f"done, ≥ {self.min_faces} faces found (largest analysed up to the limit)"
        return f"done, {self.faces} face{'s' if self.faces != 1 else ''}"


def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def encode(image: Image.Image | np.ndarray, image_format: str = "JPEG", **params) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_raw(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB, nor a header that lies about the data)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows, 9))
        + png_chunk(b"IEND", b"")
    )


def png_16bit_rgb(rgb8: np.ndarray) -> bytes:
    """The photo as a 16-bit-per-channel PNG (values v * 257, so 255 -> 65535)."""
    height, width = rgb8.shape[:2]
    samples = rgb8.astype(">u2") * 257
    rows = b"".join(b"\x00" + samples[y].tobytes() for y in range(height))
    return png_raw(width, height, 16, 2, rows)


def png_bomb(side: int = 50_000) -> bytes:
    """A few hundred bytes whose header says ``side`` x ``side`` grey pixels (2.5 gigapixels for 50k).

    The data is the deflate stream of the first 64 rows of zeros only: the header is all a decoder
    needs to allocate the whole image, and all we may read before refusing it.
    """
    return png_raw(side, side, 8, 0, bytes((side + 1) * 64))


def with_metadata(image: Image.Image, orientation: int = 1) -> bytes:
    """A JPEG with an EXIF orientation, GPS coordinates, XMP and a comment: what a phone might send."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "CorpusCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    return encode(image, "JPEG", quality=92, exif=exif, comment=SECRET_COMMENT, xmp=SECRET_XMP)


def upright_portrait() -> np.ndarray:
    """512 wide x 640 tall: the astronaut above a grey band, so a turned photo cannot pass for upright."""
    return np.concatenate([astronaut(), np.full((128, 512, 3), 120, np.uint8)], axis=0)


def rgba_with_transparent_band(array: np.ndarray) -> Image.Image:
    """The photo with its right 150 columns fully transparent and black underneath."""
    rgba = np.dstack([array, np.full(array.shape[:2], 255, np.uint8)])
    rgba[:, -150:] = 0
    return Image.fromarray(rgba, "RGBA")


def animated_gif() -> bytes:
    frames = [
        Image.fromarray(astronaut()).convert("P"),
        Image.fromarray(skimage.data.coffee()[:512, :512]).convert("P"),
    ]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)


def heic(array: np.ndarray) -> bytes:
    from pillow_heif import from_pillow

    buffer = io.BytesIO()
    from_pillow(Image.fromarray(array)).save(buffer, format="HEIF", quality=85)
    return buffer.getvalue()


def panorama() -> tuple[bytes, tuple[int, int]]:
    """10,000 x 600: a smooth gradient with the astronaut pasted in at x 6000, y 44."""
    width, height, left, top = 10_000, 600, 6000, 44
    ramp = np.linspace(60, 200, width, dtype=np.float32)
    canvas = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2).astype(np.uint8)
    canvas[top : top + 512, left : left + 512] = astronaut()
    return encode(canvas, quality=90), (left + ASTRONAUT_FACE_CENTER[0], top + ASTRONAUT_FACE_CENTER[1])


def crowd(columns: int = 8, rows: int = 4) -> bytes:
    """``columns`` x ``rows`` copies of the astronaut's face (flipped and tinted variants) in a grid."""
    face = astronaut()[20:220, 140:310]  # 170 wide x 200 tall, the face with some margin
    tints = [(1.0, 1.0, 1.0), (1.1, 0.95, 0.85), (0.85, 0.95, 1.1), (0.9, 1.05, 0.9)]
    tiles = []
    for index in range(columns * rows):
        tile = face[:, ::-1] if index % 2 else face
        tiles.append((tile * np.array(tints[index % len(tints)])).clip(0, 255).astype(np.uint8))
    grid = [np.concatenate(tiles[r * columns : (r + 1) * columns], axis=1) for r in range(rows)]
    return encode(np.concatenate(grid, axis=0), quality=92)


def corrupt_header_jpeg() -> bytes:
    """The astronaut JPEG with its headers (quantisation and Huffman tables, frame size) overwritten
    with random bytes after the first marker: it still starts like a JPEG."""
    data = bytearray(encode(astronaut(), quality=92))
    data[4:600] = np.random.default_rng(6).integers(0, 256, 596, dtype=np.uint8).tobytes()
    return bytes(data)


def jpeg_frame_larger_than_its_data() -> bytes:
    """A 640 x 360 JPEG whose frame header says 6000 x 6000, ending with its end marker: Pillow decodes it
    without an error, the rest of the 6000 x 6000 filled with grey."""
    data = bytearray(encode(Image.fromarray(astronaut()).resize((640, 360)), quality=90))
    frame = data.find(b"\xff\xc0")  # baseline start-of-frame: length (2), precision (1), height, width
    data[frame + 5 : frame + 9] = struct.pack(">HH", 6000, 6000)
    return bytes(data)


def corpus(*, max_upload_bytes: int, max_image_pixels: int, min_image_side: int) -> list[Case]:
    """Every case, for the limits in force (the oversized and too-many-pixels files follow them)."""
    photo = astronaut()
    one_face = {"faces": 1, "face_center": ASTRONAUT_FACE_CENTER, "size": (512, 512)}
    portrait = upright_portrait()
    over_limit = int(max_image_pixels**0.5) + 1
    cases = [
        Case("zero_bytes", "zero bytes", b"", "image/jpeg", "empty_file", "empty"),
        Case(
            "text_named_jpg",
            "plain text named `photo.jpg`, claimed `image/jpeg`",
            b"These are my holiday notes, not a photo.\n" * 20,
            "image/jpeg",
            "unsupported_image",
            "not an image",
        ),
        Case(
            "html_named_jpg",
            "HTML named `photo.jpg`",
            b"<!DOCTYPE html><html><body><script>alert(1)</script><img src=x onerror=alert(2)></body></html>",
            "image/jpeg",
            "unsupported_image",
            "not an image",
        ),
        Case(
            "svg",
            "SVG (refused: a script-capable document, not a photo)",
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="512" height="512">'
            b'<rect width="512" height="512" fill="red"/><script>alert(1)</script></svg>',
            "image/svg+xml",
            "unsupported_image",
            "not an image",
        ),
        Case(
            "truncated_jpeg",
            "JPEG cut after a third of its bytes",
            encode(photo, quality=92)[: len(encode(photo, quality=92)) // 3],
            "image/jpeg",
            "damaged_image",
            "damaged or incomplete",
        ),
        Case(
            "jpeg_frame_larger_than_data",
            "JPEG whose header says 6000 x 6000 over data for 640 x 360, then its end marker",
            jpeg_frame_larger_than_its_data(),
            "image/jpeg",
            "damaged_image",
            "its data ends before the picture does",
        ),
        Case(
            "corrupt_header_jpeg",
            "JPEG with random bytes over its headers",
            corrupt_header_jpeg(),
            "image/jpeg",
            "damaged_image",
            "damaged",
        ),
        Case(
            "png_bomb_50k",
            "PNG decompression bomb: 50,000 x 50,000 pixels in a tiny file",
            png_bomb(),
            "image/png",
            "image_too_large",
            "megapixels",
        ),
        Case(
            "png_over_pixel_limit",
            f"PNG of {over_limit} x {over_limit} grey pixels: over MAX_IMAGE_PIXELS, under Pillow's own bomb limit",
            encode(Image.new("L", (over_limit, over_limit), 128), "PNG"),
            "image/png",
            "image_too_large",
            "megapixels",
        ),
        Case(
            "oversized",
            f"{max_upload_bytes + 1:,} bytes (MAX_UPLOAD_BYTES + 1), starting like a JPEG",
            b"\xff\xd8\xff\xe0" + bytes(max_upload_bytes - 3),
            "image/jpeg",
            "file_too_large",
            "larger than",
        ),
        Case(
            "one_pixel",
            "1 x 1 PNG",
            encode(Image.new("RGB", (1, 1), (200, 150, 100)), "PNG"),
            "image/png",
            "image_too_small",
            f"at least {min_image_side} pixels",
        ),
        Case("animated_gif", "animated GIF (2 frames, the face in the first)", animated_gif(), "image/gif", **one_face),
        Case(
            "png16_grey",
            "16-bit greyscale PNG",
            encode(Image.fromarray(np.asarray(Image.fromarray(photo).convert("L")).astype(np.uint16) * 257), "PNG"),
            "image/png",
            **one_face,
        ),
        Case("png16_rgb", "16-bit RGB PNG", png_16bit_rgb(photo), "image/png", **one_face),
        Case(
            "palette_png",
            "palette (8-bit indexed) PNG",
            encode(Image.fromarray(photo).quantize(256), "PNG"),
            "image/png",
            **one_face,
        ),
        Case(
            "png_alpha",
            "PNG with alpha (a transparent band, black under it)",
            encode(rgba_with_transparent_band(photo), "PNG"),
            "image/png",
            **one_face,
        ),
        Case(
            "webp_alpha",
            "WebP with alpha",
            encode(rgba_with_transparent_band(photo), "WEBP", quality=90),
            "image/webp",
            **one_face,
        ),
        Case(
            "cmyk_jpeg",
            "CMYK JPEG",
            encode(Image.fromarray(photo).convert("CMYK"), quality=92),
            "image/jpeg",
            **one_face,
        ),
        Case(
            "grey_jpeg",
            "greyscale JPEG",
            encode(Image.fromarray(photo).convert("L"), quality=92),
            "image/jpeg",
            **one_face,
        ),
        Case("tiff", "TIFF (LZW)", encode(photo, "TIFF", compression="tiff_lzw"), "image/tiff", **one_face),
        Case("heic", "HEIC", heic(photo), "image/heic", **one_face),
    ]
    for orientation, transposition in STORED_FROM_UPRIGHT.items():
        stored = Image.fromarray(portrait)
        if transposition is not None:
            stored = stored.transpose(transposition)
        cases.append(
            Case(
                f"exif_orientation_{orientation}",
                f"JPEG, EXIF orientation {orientation}, with GPS, XMP and a comment",
                with_metadata(stored, orientation),
                "image/jpeg",
                faces=1,
                face_center=ASTRONAUT_FACE_CENTER,
                size=(512, 640),
                has_metadata=True,
            )
        )
    panorama_data, panorama_center = panorama()
    cases += [
        Case(
            "panorama",
            "10,000 x 600 panorama JPEG",
            panorama_data,
            "image/jpeg",
            faces=1,
            face_center=panorama_center,
            size=(10_000, 600),
        ),
        Case(
            "crowd",
            "32 faces (8 x 4 grid of the astronaut's face, flipped and tinted)",
            crowd(),
            "image/jpeg",
            min_faces=30,
            size=(8 * 170, 4 * 200),
        ),
    ]
    return cases
