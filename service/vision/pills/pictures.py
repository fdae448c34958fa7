"""The pictures kept with a pill verification for the people who review it: each photo as
submitted (HEIC, which browsers cannot show, as JPEG) and each pill as Verity cropped it, small.
Pure: bytes in, bytes out."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from service.config import LimitSettings
from service.vision.pills.decode import decode_image, media_type

SHOWABLE = ("image/jpeg", "image/png", "image/webp")  # what a browser shows as is
MARGIN = 0.15  # of the pill's box on each side: the pill with a little of what surrounds it

# (name, media type, bytes)
Picture = tuple[str, str, bytes]


def pill_picture(rgb: np.ndarray, bbox: Sequence[int], max_side: int) -> bytes:
    """The pill's box (with a margin) as a PNG whose long side is at most `max_side`."""
    x, y, w, h = (int(v) for v in bbox)
    mx, my = int(w * MARGIN), int(h * MARGIN)
    height, width = rgb.shape[:2]
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(width, x + w + mx), min(height, y + h + my)
    if x1 <= x0 or y1 <= y0:  # no box measured: the whole photo
        x0, y0, x1, y1 = 0, 0, width, height
    img = Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def verification_pictures(
    photos: Sequence[bytes],
    pills: Sequence[tuple[int, int, Sequence[int]]],
    limits: LimitSettings,
) -> list[Picture]:
    """`photo-N` for every photo (when limits.keep_photos) and `pill-N` for every pill, given
    as (pill index, photo index, bbox); photos were already decoded once, within the limits."""
    out: list[Picture] = []
    by_photo: dict[int, list[tuple[int, Sequence[int]]]] = {}
    for index, photo_index, box in pills:
        by_photo.setdefault(photo_index, []).append((index, box))
    for photo_index, data in enumerate(photos):
        found = by_photo.get(photo_index, [])
        kind = media_type(data)
        convert = limits.keep_photos and kind not in SHOWABLE
        rgb = decode_image(data, limits) if found or convert else None
        if limits.keep_photos:
            name = f"photo-{photo_index}"
            out.append((name, "image/jpeg", _jpeg(rgb)) if rgb is not None and convert
                       else (name, kind, data))  # fmt: skip
        for index, box in found:
            assert rgb is not None
            picture = pill_picture(rgb, box, limits.pill_picture_px)
            out.append((f"pill-{index}", "image/png", picture))
    return out
