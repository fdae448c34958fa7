"""CT series of any length built from REAL CT slices, for the benchmark and the tests: real
pixel data copied and interpolated between neighbouring real slices, fresh consistent UIDs,
InstanceNumber and ImagePositionPatient, and the matching Patient/ServiceRequest/ImagingStudy,
so that a whole study folder (fhir/ + dicom/) can be verified like a dataset case."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.multival import MultiValue

from service.demo.study_files import (
    ABDOMEN_CT,
    CHEST_CT,
    HEAD_CT,
    TZ,
    Exam,
    Image,
    Order,
    Person,
    dicom_dataset,
    write_dicom,
    write_fhir,
)

# pydicom-data's real 512x512 axial head CT slice (uncompressed), present offline once installed.
DEFAULT_SOURCE, DEFAULT_EXAM = "693_UNCR.dcm", HEAD_CT
BY_BODY_PART: dict[str, Exam] = {e.body_part: e for e in (HEAD_CT, CHEST_CT, ABDOMEN_CT)}
NOISE_HU = 2.0  # per-instance quantum noise, so no two instances of a series are pixel-identical
STEP = 0.5  # source slices advanced per instance: every other instance is interpolated


def default_ct_slices() -> list[Path]:
    """The real CT slice that pydicom-data provides offline (no download is ever attempted)."""
    path = get_testdata_file(DEFAULT_SOURCE, download=False)
    if not isinstance(path, str):
        raise FileNotFoundError(f"{DEFAULT_SOURCE} not found: install pydicom-data, or pass "
                                "source_slices")  # fmt: skip
    return [Path(path)]


def write_ct_series(folder: Path, n: int, *, source_slices: Sequence[Path] | None = None,
                    seed: int = 0, exam: Exam | None = None) -> list[Path]:  # fmt: skip
    """Write `folder/fhir/*.json` and `folder/dicom/*.dcm` (n instances, one series); return the
    DICOM paths in InstanceNumber order. `exam` defaults to the sources' BodyPartExamined (HEAD
    for the default source); sources without one need it said."""
    if n < 1:
        raise ValueError("a series needs at least one instance")
    paths = list(source_slices) if source_slices is not None else default_ct_slices()
    sources = sorted((pydicom.dcmread(p) for p in paths), key=_along_normal)
    exam = exam or _exam_of(sources, default=source_slices is None)
    stack = np.stack([_hu(ds) for ds in sources])
    first = sources[0]
    slope, intercept = float(first.get("RescaleSlope", 1)), float(first.get("RescaleIntercept", 0))
    spacing = _spacing(sources)
    origin = np.array([float(v) for v in first.ImagePositionPatient])
    iop = tuple(float(v) for v in first.ImageOrientationPatient)
    normal = np.cross(iop[:3], iop[3:])
    order = _order(seed, n, exam)
    write_fhir(folder / "fhir", order, range(1, n + 1))
    dtype = np.int16 if int(first.PixelRepresentation) == 1 else np.uint16
    limits = np.iinfo(dtype)
    written = []
    for i in range(n):
        hu = _sample(stack, _triangle(i * STEP, len(sources) - 1))
        rng = np.random.default_rng([seed, i])
        hu = hu + (hu > -950.0) * rng.normal(0.0, NOISE_HU, hu.shape).astype(np.float32)
        stored = np.clip(np.rint((hu - intercept) / slope), limits.min, limits.max).astype(dtype)
        image = Image(
            number=i + 1, pixels=stored, bits_stored=int(first.BitsStored),
            window=_window(first), rescale=(intercept, slope),
            pixel_spacing=(float(first.PixelSpacing[0]), float(first.PixelSpacing[1])),
            position=_xyz(origin + i * spacing * normal),
            orientation=iop, slice_thickness=float(first.get("SliceThickness") or spacing),
            extra=_padding(first),
        )  # fmt: skip
        ds = dicom_dataset(order, image)
        ds.SpacingBetweenSlices = f"{spacing:g}"
        written.append(write_dicom(folder / "dicom", ds))
    return written


def _order(seed: int, n: int, exam: Exam) -> Order:
    """A bench patient and order per (seed, n, exam): series of other sizes get other UIDs."""
    who = Person(f"8{seed % 10_000_000:07d}", "Bench", ("Series",), "female", date(1970, 1, 1))
    when = datetime(2025, 3, 10, 9, 0, tzinfo=TZ)
    accession = f"B{seed % 10_000:04d}{n:05d}"
    key = f"ct-series|{seed}|{n}|{exam.body_part}"
    return Order(key, who, exam, accession, when, when.replace(hour=10))


def _exam_of(sources: Sequence[pydicom.Dataset], *, default: bool) -> Exam:
    if default:
        return DEFAULT_EXAM
    parts = {str(ds.get("BodyPartExamined") or "").upper() for ds in sources}
    if len(parts) == 1 and (part := parts.pop()) in BY_BODY_PART:
        return BY_BODY_PART[part]
    raise ValueError("the source slices do not name one known BodyPartExamined: pass exam=")


def _along_normal(ds: pydicom.Dataset) -> float:
    iop = [float(v) for v in ds.ImageOrientationPatient]
    return float(np.dot(np.cross(iop[:3], iop[3:]), [float(v) for v in ds.ImagePositionPatient]))


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    return np.asarray(ds.pixel_array, dtype=np.float32) * slope + intercept


def _spacing(sources: Sequence[pydicom.Dataset]) -> float:
    """The sources' own slice spacing, else their slice thickness, else 5 mm."""
    if len(sources) > 1:
        gaps = np.diff([_along_normal(ds) for ds in sources])
        return round(float(np.median(np.abs(gaps))), 3) or 1.0
    return float(sources[0].get("SliceThickness") or 5.0)


def _triangle(t: float, last: int) -> float:
    """Walk up and down the source stack (0 .. last .. 0 ..), so any n stays between real slices."""
    if last == 0:
        return 0.0
    t = t % (2 * last)
    return t if t <= last else 2 * last - t


def _sample(stack: np.ndarray, t: float) -> np.ndarray:
    lo = int(math.floor(t))
    hi = min(lo + 1, len(stack) - 1)
    frac = np.float32(t - lo)
    return np.asarray(stack[lo] * (1 - frac) + stack[hi] * frac, dtype=np.float32)


def _window(ds: pydicom.Dataset) -> tuple[float, float]:
    """The source's first window (WindowCenter/Width may hold several), else a soft-tissue one."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return (40.0, 400.0)
    return (_first(center), _first(width))


def _first(value: MultiValue[str] | str | float) -> float:
    return float(value[0] if isinstance(value, MultiValue) else value)


def _xyz(point: np.ndarray) -> tuple[float, float, float]:
    return (float(point[0]), float(point[1]), float(point[2]))


def _padding(ds: pydicom.Dataset) -> dict[str, object]:
    value = ds.get("PixelPaddingValue")
    return {} if value is None else {"PixelPaddingValue": int(value)}
