"""DICOM bytes -> dataset -> representative display frames; pixels that cannot be shown are a
finding (PixelsUnreadable), never a crash.

Decoders: pydicom for native pixel data, the pylibjpeg plugins (libjpeg, openjpeg, rle) for
every compressed syntax. GDCM is never used: pydicom would try it first when installed, and
pylibjpeg decodes every syntax of the reference data (measured: same pixels as GDCM on the
lossless and JPEG-LS files).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.pixels.decoders.base import Decoder, get_decoder
from pydicom.pixels.processing import apply_color_lut
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from service.config import LimitSettings
from service.errors import DicomInvalid, DicomTooLarge
from service.vision.dicom.display import frame_transforms, modality_values, to_display
from service.vision.dicom.frames import check_encapsulated_frame, check_native_length
from service.vision.dicom.unreadable import PixelsUnreadable

__all__ = ["DecodedImage", "PixelsUnreadable", "decode_image", "read_part10"]

_DEFAULT_MAX_PIXELS = LimitSettings().max_image_pixels
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class DecodedImage:
    """Representative frames of one instance, uint8 (H, W) grey or (H, W, 3) RGB, for display."""

    frames: list[np.ndarray]
    frame_indices: tuple[int, ...]
    total_frames: int


def read_part10(data: bytes, *, max_bytes: int | None = None) -> Dataset:
    """Parse a Part 10 file, or a bare dataset without preamble/meta; malformed -> DicomInvalid."""
    if not data:
        raise DicomInvalid("empty DICOM object")
    if max_bytes is not None and len(data) > max_bytes:
        raise DicomTooLarge(f"DICOM object of {len(data)} bytes > {max_bytes}")
    part10 = data[128:132] == b"DICM"
    try:
        ds = dcmread(io.BytesIO(data), force=not part10)
        for _ in ds.iterall():  # converts every raw element: a bad one fails here, not later
            pass
    except Exception as exc:  # pydicom raises many types on malformed input
        raise DicomInvalid("not a readable DICOM dataset") from exc
    if not ds.get("SOPInstanceUID") or not ds.get("SOPClassUID"):
        raise DicomInvalid("DICOM dataset without SOP Class UID or SOP Instance UID")
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little
            else ExplicitVRBigEndian
        )
    return ds


def representative_indices(total: int, count: int) -> tuple[int, ...]:
    """`count` evenly spaced frames: the centre of each of `count` equal runs of frames."""
    count = max(1, min(count, total))
    return tuple(int((k + 0.5) * total / count) for k in range(count))


def _int_attr(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PixelsUnreadable(f"Image Pixel module without a usable {keyword}") from None


def _check_shape(ds: Dataset, *, frame_limit: int, max_pixels: int) -> int:
    """Refuse over-limit objects before any pixel is decoded; returns NumberOfFrames."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise PixelsUnreadable("no Pixel Data")
    rows, columns = _int_attr(ds, "Rows"), _int_attr(ds, "Columns")
    total = _int_attr(ds, "NumberOfFrames", 1)
    if rows < 1 or columns < 1 or total < 1:
        raise PixelsUnreadable("empty image matrix")
    if total > frame_limit:
        raise DicomTooLarge(f"{total} frames > {frame_limit}")
    if rows * columns > max_pixels:
        raise DicomTooLarge(f"{rows}x{columns} pixels per frame > {max_pixels}")
    return total


def decode_image(
    ds: Dataset, *, max_frames: int, frame_limit: int, max_pixels: int = _DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Decode only the representative frames and turn them into display frames."""
    total = _check_shape(ds, frame_limit=frame_limit, max_pixels=max_pixels)
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if not syntax:
        raise PixelsUnreadable("no Transfer Syntax UID")
    syntax = UID(syntax)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise PixelsUnreadable("unsupported transfer syntax") from None
    indices = representative_indices(total, max_frames)
    if syntax.is_encapsulated:
        for index in indices:
            check_encapsulated_frame(ds, syntax, index, total)
    else:
        check_native_length(ds, total)
    plugin = "pylibjpeg" if syntax.is_compressed else ""
    frames = [_display_frame(ds, decoder, index, plugin) for index in indices]
    return DecodedImage(frames=frames, frame_indices=indices, total_frames=total)


def _display_frame(ds: Dataset, decoder: Decoder, index: int, plugin: str) -> np.ndarray:
    try:
        stored, meta = decoder.as_array(ds, index=index, decoding_plugin=plugin)
    except Exception as exc:  # any decoder failure is a finding about the pixels
        kind = UID(ds.file_meta.TransferSyntaxUID).name
        raise PixelsUnreadable(f"undecodable frame ({kind[:30]})") from exc
    photometric = str(meta.get("photometric_interpretation", ds.PhotometricInterpretation))
    if photometric == "PALETTE COLOR":
        return _colour(apply_color_lut(stored, ds), 16)
    if stored.ndim == 3:
        return _colour(stored, _int_attr(ds, "BitsStored", 8))
    keep = _padding_keep(ds, stored)
    transforms = frame_transforms(ds, index)
    grey = to_display(
        modality_values(stored, transforms), keep, transforms, photometric == "MONOCHROME1"
    )
    if grey is None:
        raise PixelsUnreadable("constant image")
    return grey


def _colour(rgb: np.ndarray, bits: int) -> np.ndarray:
    """RGB of any depth -> uint8 RGB; a constant image is unreadable."""
    high = int(rgb.max())
    if high == int(rgb.min()):
        raise PixelsUnreadable("constant image")
    if rgb.dtype == np.uint8:
        return rgb
    top = 255 if high <= 255 else (1 << max(bits, high.bit_length())) - 1
    return np.asarray(np.rint(rgb.astype(np.float32) * (255.0 / top)), dtype=np.uint8)


def _padding_keep(ds: Dataset, stored: np.ndarray) -> np.ndarray | None:
    """Mask of the pixels that are not Pixel Padding Value (or inside its range)."""
    pad = ds.get("PixelPaddingValue")
    if pad is None or not isinstance(pad, int):
        return None
    limit = ds.get("PixelPaddingRangeLimit")
    if isinstance(limit, int):
        low, high = min(pad, limit), max(pad, limit)
        padded = (stored >= low) & (stored <= high)
    else:
        padded = stored == pad
    return None if not padded.any() else ~padded
