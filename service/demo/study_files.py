"""Writes one imaging study in the dataset format of ../shared/data/README.md (studies section):
the EHR's Patient/ServiceRequest/ImagingStudy as R4 JSON and the PACS's DICOM Part 10 files, so
the demo studies and the benchmark series are read by exactly the code that reads real cases."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
)

from service.demo.study_fhir import imaging_study, patient, service_request

TZ = timezone(timedelta(hours=1))  # the dataset's EHR writes +01:00
ISSUER = "HOSPITAL.EXAMPLE"
MRN_SYSTEM = "http://hospital.example/mrn"


def demo_uid(*parts: object) -> str:
    """A deterministic UID under 2.25 (UUID-derived root): the same parts give the same UID."""
    digest = hashlib.sha256("|".join(["verity-demo", *map(str, parts)]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


@dataclass(frozen=True)
class Person:
    mrn: str
    family: str
    given: tuple[str, ...]
    gender: str  # FHIR administrative gender: male / female
    birth_date: date

    @property
    def dicom_name(self) -> str:
        return "^".join([self.family, *self.given]).upper()

    @property
    def dicom_sex(self) -> str:
        return {"male": "M", "female": "F"}.get(self.gender, "O")


@dataclass(frozen=True)
class Exam:
    """One orderable exam: LOINC order code, modality, and the body part in both vocabularies
    (DICOM defined term and the SNOMED CT structure of the README's table)."""

    text: str
    loinc: str
    loinc_display: str
    modality: str
    body_part: str
    snomed: str
    snomed_display: str
    sop_class: str
    series_description: str


HEAD_CT = Exam("CT Head", "24725-4", "Head CT", "CT", "HEAD", "69536005", "Head structure",
               CTImageStorage, "AX 5mm")  # fmt: skip
CHEST_CT = Exam("CT Chest", "24627-2", "Chest CT", "CT", "CHEST", "51185008",
                "Thoracic structure", CTImageStorage, "AX 5mm")  # fmt: skip
ABDOMEN_CT = Exam("CT Abdomen", "41806-1", "Abdomen CT", "CT", "ABDOMEN", "113345001",
                  "Abdominal structure", CTImageStorage, "AX 1.25mm")  # fmt: skip
CHEST_XR = Exam("XR Chest PA", "24648-8", "Chest X-ray PA upright", "CR", "CHEST", "51185008",
                "Thoracic structure", ComputedRadiographyImageStorage, "PA")  # fmt: skip


@dataclass(frozen=True)
class Order:
    """What the EHR holds for one study: patient, order, and when it was done."""

    key: str  # seeds resource ids and UIDs
    patient: Person
    exam: Exam
    accession: str
    ordered: datetime  # ServiceRequest.occurrenceDateTime
    performed: datetime  # DICOM StudyDate/StudyTime and ImagingStudy.started

    @property
    def study_uid(self) -> str:
        return demo_uid(self.key, "study")

    @property
    def series_uid(self) -> str:
        return demo_uid(self.key, "series", 1)

    def instance_uid(self, number: int) -> str:
        return demo_uid(self.key, "instance", number)


@dataclass(frozen=True)
class Image:
    """One instance's pixels and the header values that belong to the image, not the order."""

    number: int
    pixels: np.ndarray  # stored values, uint16 or int16
    bits_stored: int
    window: tuple[float, float]  # WindowCenter, WindowWidth
    rescale: tuple[float, float] | None = None  # RescaleIntercept, RescaleSlope (CT)
    pixel_spacing: tuple[float, float] = (1.0, 1.0)
    position: tuple[float, float, float] | None = None  # ImagePositionPatient (CT)
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    slice_thickness: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more keywords, e.g. PixelPaddingValue


def write_fhir(folder: Path, order: Order, listed: Sequence[int]) -> None:
    """The EHR's three resources; `listed` = the instance numbers the ImagingStudy lists."""
    folder.mkdir(parents=True, exist_ok=True)
    resources = {
        "Patient": patient(order),
        "ServiceRequest": service_request(order),
        "ImagingStudy": imaging_study(order, [(n, order.instance_uid(n)) for n in listed]),
    }
    for name, resource in resources.items():
        (folder / f"{name}.json").write_text(json.dumps(resource, indent=2) + "\n")


def dicom_dataset(order: Order, image: Image, *, identity: Person | None = None) -> Dataset:
    """The Part 10 dataset of one instance: the order's study under `identity` (the patient
    the DICOM header names; the order's own patient unless a fault says otherwise)."""
    who = identity or order.patient
    when = order.performed
    uid = order.instance_uid(image.number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(order.exam.sop_class)
    meta.MediaStorageSOPInstanceUID = UID(uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "VERITY_DEMO"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if image.position else ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = order.exam.sop_class
    ds.SOPInstanceUID = uid
    for what in ("Study", "Series", "Content", "InstanceCreation"):
        setattr(ds, f"{what}Date", when.strftime("%Y%m%d"))
        setattr(ds, f"{what}Time", when.strftime("%H%M%S"))
    ds.AccessionNumber = order.accession
    ds.Modality = order.exam.modality
    ds.Manufacturer = "Verity demo phantom"
    ds.InstitutionName = "Hospital Example"
    ds.ReferringPhysicianName = ""
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.StudyDescription = order.exam.text.upper()
    ds.SeriesDescription = order.exam.series_description
    ds.PatientName = who.dicom_name
    ds.PatientID = who.mrn
    ds.IssuerOfPatientID = ISSUER
    qualifier = Dataset()
    qualifier.UniversalEntityID = MRN_SYSTEM
    qualifier.UniversalEntityIDType = "URI"
    ds.IssuerOfPatientIDQualifiersSequence = [qualifier]
    ds.PatientBirthDate = who.birth_date.strftime("%Y%m%d")
    ds.PatientSex = who.dicom_sex
    ds.PatientAge = f"{_age(who.birth_date, when.date()):03d}Y"
    ds.BodyPartExamined = order.exam.body_part
    ds.StudyInstanceUID = order.study_uid
    ds.SeriesInstanceUID = order.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = image.number
    _image_module(ds, order, image)
    return ds


def _image_module(ds: Dataset, order: Order, image: Image) -> None:
    if image.position is not None:
        ds.FrameOfReferenceUID = demo_uid(order.key, "frame-of-reference")
        ds.ImagePositionPatient = [f"{v:.2f}" for v in image.position]
        ds.ImageOrientationPatient = [f"{v:g}" for v in image.orientation]
        ds.SliceLocation = f"{image.position[2]:.2f}"
        ds.PatientPosition = "HFS"
    else:
        ds.ViewPosition = "PA"
        ds.PatientOrientation = ["L", "F"]
    if image.slice_thickness is not None:
        ds.SliceThickness = f"{image.slice_thickness:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(v) for v in image.pixels.shape)
    ds.PixelSpacing = [f"{v:g}" for v in image.pixel_spacing]
    ds.BitsAllocated = 16
    ds.BitsStored = image.bits_stored
    ds.HighBit = image.bits_stored - 1
    ds.PixelRepresentation = 1 if image.pixels.dtype == np.int16 else 0
    ds.WindowCenter = f"{image.window[0]:g}"
    ds.WindowWidth = f"{image.window[1]:g}"
    if image.rescale is not None:
        ds.RescaleIntercept = f"{image.rescale[0]:g}"
        ds.RescaleSlope = f"{image.rescale[1]:g}"
        ds.RescaleType = "HU"
    for keyword, value in image.extra.items():
        setattr(ds, keyword, value)
    ds.PixelData = image.pixels.astype(image.pixels.dtype.newbyteorder("<")).tobytes()


def write_dicom(folder: Path, ds: Dataset) -> Path:
    """Write one instance under an opaque file name (the PACS's names say nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(ds.SOPInstanceUID.encode()).hexdigest()[:16]}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
