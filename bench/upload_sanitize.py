"""Time the web process spends on the clean copy of an upload (apps.uploads.images.clean_image): the
header check, decoding the whole photo, turning it upright and re-encoding it without metadata.

    python bench/upload_sanitize.py [--repeats 5]

Writes upload_sanitize.txt into ``--out`` (bench/results); ``--smoke``: one repeat, for CI.
Photos are made here: 12 MP (4000 x 3000) from the astronaut, scaled up with sensor-like noise so
they compress like a phone's photo; the JPEG carries EXIF orientation 6 (so the rotation is timed
too) and GPS, as phones write them.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import ExifTags, Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mairror.settings")

import django  # noqa: E402

django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.test import override_settings  # noqa: E402

from apps.uploads import images  # noqa: E402

RESULTS = Path(__file__).parent / "results"
WIDTH, HEIGHT = 4000, 3000


def twelve_megapixels() -> np.ndarray:
    photo = cv2.resize(skimage.data.astronaut(), (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).normal(0, 4, photo.shape)
    return (photo + noise).clip(0, 255).astype(np.uint8)


def encoded(pixels: np.ndarray, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **params)
    return buffer.getvalue()


def phone_jpeg(pixels: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    return encoded(pixels, "JPEG", quality=92, exif=exif)


def timed(function, repeats: int) -> list[float]:
    function()  # warm-up: imports, allocator
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: does the benchmark still run?")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats = 1

    pixels = twelve_megapixels()
    inputs = {"12 MP JPEG, EXIF orientation 6 + GPS": phone_jpeg(pixels), "12 MP PNG": encoded(pixels, "PNG")}
    lines = [
        f"clean_image on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"median of {args.repeats} runs (min-max)",
        "",
    ]
    with override_settings(MAX_UPLOAD_BYTES=200 * 1024 * 1024):  # the noisy PNG is over the default limit
        for name, data in inputs.items():
            stored = images.clean_image(ContentFile(data))
            seconds = timed(lambda data=data: images.clean_image(ContentFile(data)), args.repeats)
            decode = timed(lambda data=data: Image.open(io.BytesIO(data)).load(), args.repeats)
            lines.append(
                f"{name} ({len(data) / 1e6:.1f} MB) -> {stored.format} {stored.width} x {stored.height} "
                f"({len(stored.content) / 1e6:.1f} MB): {statistics.median(seconds) * 1000:.0f} ms "
                f"({min(seconds) * 1000:.0f}-{max(seconds) * 1000:.0f}), of which decoding "
                f"{statistics.median(decode) * 1000:.0f} ms"
            )
    # The PNG encoder's compression levels, on the same photo (apps.uploads.images.PNG_COMPRESS_LEVEL).
    for level in (1, 3, 6):
        encode = timed(lambda level=level: encoded(pixels, "PNG", compress_level=level), args.repeats)
        size = len(encoded(pixels, "PNG", compress_level=level))
        lines.append(
            f"PNG encoding of the 12 MP photo at compress_level {level}: "
            f"{statistics.median(encode) * 1000:.0f} ms, {size / 1e6:.1f} MB"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "upload_sanitize.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
