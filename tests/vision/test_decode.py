"""decode_image: every bad upload maps to its own error; EXIF orientation is applied."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.config import LimitSettings
from service.errors import (
    ImageCorrupt,
    ImageEmpty,
    ImageTooLarge,
    ImageTooSmall,
    UnsupportedMediaType,
)
from service.vision.pills.decode import decode_image, sniff_format

LIMITS = LimitSettings()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def _png_bomb(side: int = 20_000) -> bytes:
    """A real, valid 1-bit PNG of side x side zeros: a few kB that would decode to 400 Mpx."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def test_zero_bytes_is_empty() -> None:
    with pytest.raises(ImageEmpty):
        decode_image(b"", LIMITS)


def test_text_file_named_jpg_is_unsupported(tmp_path: Path) -> None:
    fake = tmp_path / "pill.jpg"
    fake.write_text("this is not a photo of a pill\n")
    with pytest.raises(UnsupportedMediaType):
        decode_image(fake.read_bytes(), LIMITS)


def test_truncated_jpeg_is_corrupt(pills_dir: Path) -> None:
    data = (pills_dir / "ndc_00003-4222-16" / "photo_2.jpg").read_bytes()
    assert sniff_format(data) == "JPEG"
    with pytest.raises(ImageCorrupt):
        decode_image(data[: len(data) // 2], LIMITS)


def test_png_bomb_refused_before_decoding() -> None:
    bomb = _png_bomb()
    assert len(bomb) < 200_000  # small on the wire
    with pytest.raises(ImageTooLarge):
        decode_image(bomb, LIMITS)


def test_byte_limit() -> None:
    limits = LimitSettings(max_image_bytes=1024)
    with pytest.raises(ImageTooLarge):
        decode_image(b"\xff\xd8\xff" + b"\x00" * 2000, limits)


def test_tiny_image_is_too_small() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), "white").save(buf, "PNG")
    with pytest.raises(ImageTooSmall):
        decode_image(buf.getvalue(), LIMITS)


def test_exif_orientation_is_applied(pills_dir: Path) -> None:
    upright = np.asarray(Image.open(pills_dir / "ndc_00002-3228-30" / "ref_1.jpg").convert("RGB"))
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))  # camera held sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    got = decode_image(buf.getvalue(), LIMITS)
    assert got.shape == upright.shape
    assert float(np.abs(got.astype(int) - upright.astype(int)).mean()) < 4.0


def test_png_and_webp_decode_to_rgb() -> None:
    img = Image.new("RGBA", (64, 48), (200, 10, 10, 255))
    for fmt in ("PNG", "WEBP"):
        buf = io.BytesIO()
        img.save(buf, fmt)
        out = decode_image(buf.getvalue(), LIMITS)
        assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def _heic(img: Image.Image, orientation: int | None = None) -> bytes:
    """Encode with pillow-heif (test-only; the service decodes with the decode-only pi-heif)."""
    import pillow_heif

    heif = pillow_heif.from_pillow(img)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        heif.info["exif"] = exif.tobytes()
    buf = io.BytesIO()
    heif.save(buf, quality=90)
    return buf.getvalue()


def test_heic_phone_photo_decodes_upright(pills_dir: Path) -> None:
    """A real photo saved as HEIC (as phones do) decodes to the same pixels, EXIF turn applied."""
    img = Image.open(pills_dir / "ndc_00093-3147-01" / "photo_2.jpg").convert("RGB")
    img = img.crop((0, 0, img.width, img.height // 2))  # not square: a turn shows in the shape
    data = _heic(img)
    assert sniff_format(data) == "HEIF"
    rgb = decode_image(data, LIMITS)
    assert rgb.shape == (img.height, img.width, 3)
    assert float(np.abs(rgb.astype(int) - np.asarray(img).astype(int)).mean()) < 3.0
    turned = decode_image(_heic(img, orientation=6), LIMITS)  # camera held sideways
    assert turned.shape == (img.width, img.height, 3)


def test_truncated_heic_is_corrupt(pills_dir: Path) -> None:
    img = Image.open(pills_dir / "ndc_00093-3147-01" / "photo_2.jpg").convert("RGB")
    data = _heic(img)
    with pytest.raises(ImageCorrupt):
        decode_image(data[: len(data) // 2], LIMITS)
