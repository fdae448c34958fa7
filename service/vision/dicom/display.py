"""Stored values -> display grey levels: Modality LUT (rescale), VOI LUT or window, MONOCHROME1,
per frame (enhanced multi-frame objects keep these in their functional groups)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_modality_lut, apply_voi

# Share of the pixels clipped at each end by the robust window when the header has none.
ROBUST_PERCENTILES = (0.5, 99.5)
# Pixels sampled for the robust window and the constant-image test (a strided subsample).
_SAMPLE_PIXELS = 1 << 16
_LINEAR_FUNCTIONS = {"LINEAR", "LINEAR_EXACT", "SIGMOID"}


@dataclass(frozen=True)
class FrameTransforms:
    """The Modality LUT and VOI attributes in force for one frame."""

    lut_ds: Dataset  # holds RescaleSlope/Intercept or ModalityLUTSequence, VOILUTSequence
    window: tuple[float, float] | None  # (centre, width), first value
    function: str  # VOILUTFunction


def _first(value: object) -> float | None:
    """First value of a possibly multi-valued DS; None when absent or unusable."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def frame_transforms(ds: Dataset, index: int) -> FrameTransforms:
    """Top-level attributes, overridden by the shared then the per-frame functional groups."""
    merged = Dataset()
    for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence"):
        if keyword in ds:
            merged[keyword] = ds[keyword]
    voi: dict[str, object] = {k: ds.get(k) for k in ("WindowCenter", "WindowWidth")}
    voi["VOILUTFunction"] = ds.get("VOILUTFunction")
    voi_lut = ds.get("VOILUTSequence")
    groups: list[Dataset] = []
    for keyword, position in (
        ("SharedFunctionalGroupsSequence", 0),
        ("PerFrameFunctionalGroupsSequence", index),
    ):
        seq = ds.get(keyword)
        if seq and len(seq) > position:
            groups.append(seq[position])
    for group in groups:
        for item in group.get("PixelValueTransformationSequence", [])[:1]:
            for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
                if keyword in item:
                    merged[keyword] = item[keyword]
        for item in group.get("FrameVOILUTSequence", [])[:1]:
            voi = {k: item.get(k) for k in ("WindowCenter", "WindowWidth", "VOILUTFunction")}
    if voi_lut:
        merged.VOILUTSequence = voi_lut
    centre, width = _first(voi["WindowCenter"]), _first(voi["WindowWidth"])
    function = str(voi["VOILUTFunction"] or "LINEAR").upper()
    window = None
    if centre is not None and width is not None and width >= 1:
        window = (centre, width)
    return FrameTransforms(merged, window, function if function in _LINEAR_FUNCTIONS else "LINEAR")


def modality_values(stored: np.ndarray, transforms: FrameTransforms) -> np.ndarray:
    """Stored values -> modality values (e.g. Hounsfield units), float32."""
    out = apply_modality_lut(stored, transforms.lut_ds)
    return np.asarray(out, dtype=np.float32)


def _sample(values: np.ndarray) -> np.ndarray:
    step = max(1, values.size // _SAMPLE_PIXELS)
    return values.reshape(-1)[::step]


def _window(values: np.ndarray, centre: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing to [0, 1]."""
    if function == "SIGMOID":
        return (1.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))).astype(np.float32)
    if function == "LINEAR_EXACT":
        return np.clip((values - centre) / width + 0.5, 0.0, 1.0)
    return np.clip((values - (centre - 0.5)) / max(width - 1.0, 1.0) + 0.5, 0.0, 1.0)


def _voi_lut(values: np.ndarray, transforms: FrameTransforms) -> np.ndarray:
    """Apply the first VOI LUT Sequence item; output scaled to [0, 1] by its bit depth."""
    item = transforms.lut_ds.VOILUTSequence[0]
    bits = int(item.LUTDescriptor[2])
    mapped = apply_voi(np.rint(values).astype(np.int64), transforms.lut_ds, index=0)
    scaled = np.asarray(mapped, dtype=np.float32) / float((1 << bits) - 1)
    return np.asarray(np.clip(scaled, 0.0, 1.0), dtype=np.float32)


def robust_window(values: np.ndarray) -> tuple[float, float]:
    """(low, high) percentiles of the (non-padding) values, widened to min/max if they meet."""
    low, high = (float(v) for v in np.percentile(_sample(values), ROBUST_PERCENTILES))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low, low + 1.0)


def to_display(
    values: np.ndarray, keep: np.ndarray | None, transforms: FrameTransforms, monochrome1: bool
) -> np.ndarray | None:
    """Modality values -> uint8 grey: VOI LUT, else the header window, else a robust window.

    `keep` masks out Pixel Padding Value pixels: they neither set the window nor show (black).
    A header window that leaves every kept pixel at one level is ignored (the robust window
    is used instead). Returns None when the kept pixels are all equal (a constant image).
    """
    kept = values[keep] if keep is not None else values
    if kept.size == 0 or float(kept.min()) == float(kept.max()):
        return None
    grey: np.ndarray | None = None
    if "VOILUTSequence" in transforms.lut_ds:
        grey = _voi_lut(values, transforms)
    elif transforms.window is not None:
        grey = _window(values, *transforms.window, transforms.function)
    if grey is not None:
        shown = grey[keep] if keep is not None else grey
        if float(shown.max()) - float(shown.min()) < 1.0 / 255.0:
            grey = None
    if grey is None:
        low, high = robust_window(kept)
        grey = np.clip((values - low) / (high - low), 0.0, 1.0)
    if monochrome1:
        grey = 1.0 - grey
    if keep is not None:
        grey = np.where(keep, grey, 0.0)
    return np.rint(grey * 255.0).astype(np.uint8)
