"""The header of one DICOM instance, as the checks need it, read from a pydicom Dataset (a
Part 10 file or DICOMweb JSON metadata: `pydicom.Dataset.from_json`). No pixels, no I/O."""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydicom import Dataset
from pydicom.multival import MultiValue

# What pydicom raises while converting a malformed value (a bad IS/DS/DA, a broken sequence).
_MALFORMED = (
    ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError,
    NotImplementedError, struct.error,
)  # fmt: skip
LATERALITIES = frozenset({"R", "L", "B", "U"})
SEXES = frozenset({"M", "F", "O"})


@dataclass(frozen=True)
class InstanceHeader:
    sop_uid: str
    series_uid: str
    study_uid: str
    sop_class: str | None = None
    instance_number: int | None = None
    series_number: int | None = None
    patient_id: str | None = None
    issuer: str | None = None  # IssuerOfPatientID
    issuer_universal: str | None = None  # IssuerOfPatientIDQualifiersSequence UniversalEntityID
    patient_name: str | None = None  # PN as stored, "FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX"
    birth_date: date | None = None
    sex: str | None = None  # "M", "F", "O"
    accession: str | None = None
    modality: str | None = None
    body_part: str | None = None  # BodyPartExamined (defined term)
    anatomic_regions: tuple[str, ...] = ()  # AnatomicRegionSequence CodeValues (SNOMED CT)
    laterality: str | None = None  # Laterality, else ImageLaterality: "R", "L", "B", "U"
    study_date: date | None = None
    position: tuple[float, float, float] | None = None  # ImagePositionPatient
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient (6 values)
    frames: int = 1  # NumberOfFrames
    rows: int | None = None
    columns: int | None = None
    transfer_syntax: str | None = None
    # PixelSpacing, else ImagerPixelSpacing, else the functional groups' (row, column) mm
    pixel_spacing: tuple[float, float] | None = None


def _value(ds: Dataset, keyword: str) -> Any:
    """The element's value, or None when it is absent, empty or cannot be converted."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns with the bad value in the text: PHI
            value = ds.get(keyword)
    except _MALFORMED:
        return None
    if value is None or (isinstance(value, str | bytes | list | tuple) and len(value) == 0):
        return None
    return value


def _text(ds: Dataset, keyword: str) -> str | None:
    value = _value(ds, keyword)
    if value is None or isinstance(value, bytes):
        return None
    if isinstance(value, list | tuple | MultiValue):
        value = value[0] if len(value) else None
    text = str(value).strip(" \x00") if value is not None else ""
    return text or None


def _int(ds: Dataset, keyword: str) -> int | None:
    text = _text(ds, keyword)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _floats(ds: Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    value = _value(ds, keyword)
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (*_MALFORMED,):
        return None
    return numbers if len(numbers) == count else None


def _date(ds: Dataset, keyword: str) -> date | None:
    """A DA value (YYYYMMDD; the ACR-NEMA YYYY.MM.DD form too), else None."""
    text = (_text(ds, keyword) or "").replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _items(ds: Dataset, keyword: str) -> list[Dataset]:
    value = _value(ds, keyword)
    try:
        return [item for item in value or () if isinstance(item, Dataset)]
    except (*_MALFORMED,):
        return []


def _frame_groups(ds: Dataset) -> list[Dataset]:
    """The shared functional group, then the first frame's (enhanced multi-frame objects)."""
    return (
        _items(ds, "SharedFunctionalGroupsSequence")[:1]
        + _items(ds, "PerFrameFunctionalGroupsSequence")[:1]
    )


def _in_groups(
    groups: list[Dataset], sequence: str, keyword: str, count: int
) -> tuple[float, ...] | None:
    for group in groups:
        for item in _items(group, sequence)[:1]:
            found = _floats(item, keyword, count)
            if found is not None:
                return found
    return None


def _region_codes(ds: Dataset, groups: list[Dataset]) -> tuple[str, ...]:
    holders = [ds] + [item for g in groups for item in _items(g, "FrameAnatomySequence")[:1]]
    codes = (_text(i, "CodeValue") for h in holders for i in _items(h, "AnatomicRegionSequence"))
    return tuple(dict.fromkeys(c for c in codes if c))


def _laterality(ds: Dataset, groups: list[Dataset]) -> str | None:
    candidates = [_text(ds, "Laterality"), _text(ds, "ImageLaterality")] + [
        _text(item, "FrameLaterality") for g in groups for item in _items(g, "FrameAnatomySequence")
    ]
    for value in candidates:
        if value and value.upper() in LATERALITIES:
            return value.upper()
    return None


def _patient_name(ds: Dataset) -> str | None:
    value = _value(ds, "PatientName")
    if value is None:
        return None
    text = str(getattr(value, "alphabetic", value)).split("=")[0].strip(" \x00")
    return text or None


def _transfer_syntax(ds: Dataset) -> str | None:
    meta = getattr(ds, "file_meta", None)
    return _text(meta, "TransferSyntaxUID") if isinstance(meta, Dataset) else None


def _spacing(ds: Dataset, groups: list[Dataset]) -> tuple[float, float] | None:
    """The pixel size in mm (row, column); zero or negative spacing (0\\0 is common) is none."""
    found = (
        _floats(ds, "PixelSpacing", 2)
        or _floats(ds, "ImagerPixelSpacing", 2)
        or _in_groups(groups, "PixelMeasuresSequence", "PixelSpacing", 2)
    )
    if not found or min(found) <= 0 or not all(map(math.isfinite, found)):
        return None
    return found[0], found[1]


def from_dataset(ds: Dataset) -> InstanceHeader:
    """Read the header fields (missing or malformed values become None, never an exception)."""
    groups = _frame_groups(ds)
    qualifiers = _items(ds, "IssuerOfPatientIDQualifiersSequence")[:1]
    sex = (_text(ds, "PatientSex") or "").upper()
    position = _floats(ds, "ImagePositionPatient", 3) or _in_groups(
        groups, "PlanePositionSequence", "ImagePositionPatient", 3
    )
    orientation = _floats(ds, "ImageOrientationPatient", 6) or _in_groups(
        groups, "PlaneOrientationSequence", "ImageOrientationPatient", 6
    )
    body_part = _text(ds, "BodyPartExamined")
    xyz = (position[0], position[1], position[2]) if position else None
    return InstanceHeader(
        sop_uid=_text(ds, "SOPInstanceUID") or "",
        series_uid=_text(ds, "SeriesInstanceUID") or "",
        study_uid=_text(ds, "StudyInstanceUID") or "",
        sop_class=_text(ds, "SOPClassUID"),
        instance_number=_int(ds, "InstanceNumber"),
        series_number=_int(ds, "SeriesNumber"),
        patient_id=_text(ds, "PatientID"),
        issuer=_text(ds, "IssuerOfPatientID"),
        issuer_universal=_text(qualifiers[0], "UniversalEntityID") if qualifiers else None,
        patient_name=_patient_name(ds),
        birth_date=_date(ds, "PatientBirthDate"),
        sex=sex if sex in SEXES else None,
        accession=_text(ds, "AccessionNumber"),
        modality=(_text(ds, "Modality") or "").upper() or None,
        body_part=body_part.upper() if body_part else None,
        anatomic_regions=_region_codes(ds, groups),
        laterality=_laterality(ds, groups),
        study_date=_date(ds, "StudyDate"),
        position=xyz,
        orientation=orientation,
        frames=max(_int(ds, "NumberOfFrames") or 1, 1),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        transfer_syntax=_transfer_syntax(ds),
        pixel_spacing=_spacing(ds, groups),
    )
