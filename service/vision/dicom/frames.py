"""Structural checks of the stored pixel bytes before decoding: a JPEG family decoder fills a
truncated frame with grey and reports success, so a frame must end where its codestream ends."""

from __future__ import annotations

import math

from pydicom import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import UID, RLELossless

from service.vision.dicom.unreadable import PixelsUnreadable

_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"  # ISO 10918 / 14495: start and end of image
_J2K_SOC = b"\xff\x4f"  # ISO 15444-1 start of codestream (its end, EOC, is also FFD9)
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # a JP2 file wrapping the codestream
# Trailing bytes a fragment may carry after the end marker: the DICOM even-length pad (00)
# and JPEG fill bytes (FF).
_PADDING = b"\x00\xff"


def _kind(syntax: UID) -> str:
    if syntax == RLELossless:
        return "RLE"
    if syntax.keyword.startswith("JPEG2000") or syntax.startswith("1.2.840.10008.1.2.4.20"):
        return "JPEG 2000"
    if syntax.keyword.startswith("JPEGLS"):
        return "JPEG-LS"
    return "JPEG"


def check_encapsulated_frame(ds: Dataset, syntax: UID, index: int, total: int) -> None:
    """The frame exists and, for the JPEG family, starts and ends with its codestream markers."""
    kind = _kind(syntax)
    try:
        frame = get_frame(
            ds.PixelData,
            index,
            number_of_frames=total,
            extended_offsets=_extended_offsets(ds),
        )
    except Exception as exc:  # pydicom: ValueError/KeyError on a broken item structure
        raise PixelsUnreadable(f"missing or malformed encapsulated {kind} frame") from exc
    if kind == "RLE":
        return  # the RLE header's segment offsets are checked by the decoder itself
    start_ok = (
        frame.startswith(_JPEG_SOI)
        if kind != "JPEG 2000"
        else (frame.startswith(_J2K_SOC) or frame.startswith(_JP2_SIGNATURE))
    )
    if not start_ok:
        raise PixelsUnreadable(f"corrupted {kind} frame (no start marker)")
    if not frame[-64:].rstrip(_PADDING).endswith(_JPEG_EOI) and not frame.endswith(_JPEG_EOI):
        raise PixelsUnreadable(f"truncated {kind} frame (no end marker)")


def _extended_offsets(ds: Dataset) -> tuple[bytes, bytes] | None:
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        return (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    return None


def check_native_length(ds: Dataset, total: int) -> None:
    """Native Pixel Data must hold every frame the header announces."""
    keyword = next(k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds)
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1))
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        raise PixelsUnreadable("Image Pixel module incomplete") from None
    per_frame_values = rows * columns * samples
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        per_frame_values = rows * columns * 2  # two chroma samples shared by each pixel pair
    expected = math.ceil(per_frame_values * total * bits / 8)
    value = ds[keyword].value
    if value is None or len(value) < expected:
        raise PixelsUnreadable("short native Pixel Data")
