"""The labelled study cases of ../shared/data/studies, read straight from their folders: the
three FHIR resources and the DICOM headers (no PACS), for the header-check tests."""

from __future__ import annotations

import csv
import json
from functools import cache
from pathlib import Path
from typing import Any

import pydicom

from service.verify.imaging.headers import InstanceHeader, from_dataset
from service.verify.imaging.study import StudyOrder, read_study_order
from tests.conftest import SHARED_DATA

STUDIES = SHARED_DATA / "studies"
OUR_ISSUERS = ("HOSPITAL.EXAMPLE",)  # the dataset's hospital (README, studies section)


def fhir(case: str, name: str) -> dict[str, Any]:
    return json.loads((STUDIES / case / "fhir" / f"{name}.json").read_text())


def dicom_files(case: str) -> list[Path]:
    return sorted((STUDIES / case / "dicom").glob("*.dcm"))


def dataset(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


@cache
def order(case: str) -> StudyOrder:
    return read_study_order(
        fhir(case, "ImagingStudy"), fhir(case, "Patient"), fhir(case, "ServiceRequest")
    )


@cache
def headers(case: str) -> tuple[InstanceHeader, ...]:
    """The case's instance headers, ordered by series and InstanceNumber."""
    found = [from_dataset(dataset(p)) for p in dicom_files(case)]
    return tuple(sorted(found, key=lambda h: (h.series_number or 0, h.instance_number or 0)))


def cases() -> list[dict[str, str]]:
    with (STUDIES / "cases.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def one_file(case: str) -> Path:
    files = dicom_files(case)
    assert files, f"{case} has no DICOM files"
    return files[0]
