"""Bytes -> RGB uint8 array, with every size limit checked before pixels are decoded."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pi_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from service.config import LimitSettings
from service.errors import (
    ImageCorrupt,
    ImageEmpty,
    ImageTooLarge,
    ImageTooSmall,
    UnsupportedMediaType,
)

_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heic"}
# ISO base media file brands of HEIF still images (phones save photos as HEIC).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"}

# Decode-only libheif binding (no encoders bundled): adds the "HEIF" format to Pillow.
pi_heif.register_heif_opener()


def sniff_format(data: bytes) -> str:
    """Format from magic bytes only; the file name and declared content type are not trusted."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    raise UnsupportedMediaType("not a JPEG, PNG, WebP or HEIC image (magic bytes)")


def decode_image(data: bytes, limits: LimitSettings) -> np.ndarray:
    """Decode a photo upright (EXIF orientation applied) or raise the matching image error."""
    if not data:
        raise ImageEmpty()
    if len(data) > limits.max_image_bytes:
        raise ImageTooLarge(f"{len(data)} bytes > {limits.max_image_bytes}", bytes=len(data))
    fmt = sniff_format(data)
    # Pillow's own bomb guard errors at 2x this; ours (_check_dimensions) refuses at 1x.
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    try:
        with warnings.catch_warnings():
            # Pillow warns (and errors at 2x) on huge images; our own limits below decide first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=[fmt])
            _check_dimensions(opened.size, limits)  # header only: nothing decoded yet
            img = _decode_pixels(opened)
    except (ImageTooLarge, ImageTooSmall):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageCorrupt(f"cannot decode {fmt}: {exc}") from None
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _check_dimensions(size: tuple[int, int], limits: LimitSettings) -> None:
    """Refuse decompression bombs and useless thumbnails from the header's width/height."""
    w, h = size
    if w * h > limits.max_image_pixels or max(w, h) > limits.max_image_dimension:
        raise ImageTooLarge(f"{w}x{h} exceeds the pixel/dimension limit", width=w, height=h)
    if min(w, h) < limits.min_image_dimension:
        raise ImageTooSmall(f"{w}x{h} is below {limits.min_image_dimension} px", width=w, height=h)


def _decode_pixels(img: Image.Image) -> Image.Image:
    """Force the full decode (truncation shows here), then orient and convert to RGB."""
    img.load()
    upright = ImageOps.exif_transpose(img)
    if upright.mode != "RGB":
        if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
            rgba = upright.convert("RGBA")
            background = Image.new("RGB", rgba.size, (255, 255, 255))
            background.paste(rgba, mask=rgba.getchannel("A"))
            upright = background
        else:
            upright = upright.convert("RGB")
    return upright


def media_type(data: bytes) -> str:
    """The sniffed MIME type, for records and error messages."""
    return _FORMATS[sniff_format(data)]
