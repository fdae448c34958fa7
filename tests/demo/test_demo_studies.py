"""The generated demo studies: valid FHIR and DICOM in the dataset format, headers that agree
with the EHR where the case is clean and disagree exactly where its fault is, deterministic, small."""

from __future__ import annotations

import csv
import json
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RLELossless

from service.demo.studies import DemoCase, write_demo_studies
from service.verify.imaging.results import FindingCode

BODY_PART_SNOMED = {"HEAD": "69536005", "CHEST": "51185008"}  # the README's table, the parts used
MR_SYSTEM, ACSN = "http://hospital.example/mrn", "ACSN"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DemoCase], float]:
    folder = tmp_path_factory.mktemp("demo-studies")
    start = time.perf_counter()
    cases = write_demo_studies(folder)
    return folder, cases, time.perf_counter() - start


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _study_dirs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.rglob("fhir"))


def _headers(study: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted((study / "dicom").glob("*.dcm"))]


def _identifier(resource: dict, code: str) -> str:
    (value,) = [
        i["value"]
        for i in resource["identifier"]
        if code in [c["code"] for c in i.get("type", {}).get("coding", [])]
    ]
    return value


def _faults(study: Path) -> set[FindingCode]:
    """Compare headers with the FHIR on every point the README lists (an independent reading)."""
    pat, sr, ims = (
        _json(study / "fhir" / f"{n}.json") for n in ("Patient", "ServiceRequest", "ImagingStudy")
    )
    faults: set[FindingCode] = set()
    mrn, accession = _identifier(pat, "MR"), _identifier(sr, ACSN)
    name = pat["name"][0]
    for ds in _headers(study):
        issuer = ds.get("IssuerOfPatientID")
        if ds.PatientID != mrn or issuer not in (None, "HOSPITAL.EXAMPLE"):
            faults.add(FindingCode.PATIENT_ID_MISMATCH)
        elif (
            str(ds.PatientName).upper().split("^")
            != [name["family"].upper(), *(g.upper() for g in name["given"])]
            or ds.PatientBirthDate != pat["birthDate"].replace("-", "")
            or ds.PatientSex != {"male": "M", "female": "F"}[pat["gender"]]
        ):
            faults.add(FindingCode.DEMOGRAPHICS_MISMATCH)
        if ds.AccessionNumber != accession:
            faults.add(FindingCode.ACCESSION_MISMATCH)
        if ds.Modality != ims["modality"][0]["code"]:
            faults.add(FindingCode.MODALITY_MISMATCH)
        if BODY_PART_SNOMED[ds.BodyPartExamined] != sr["bodySite"][0]["coding"][0]["code"]:
            faults.add(FindingCode.BODY_PART_MISMATCH)
        study_day = date.fromisoformat(f"{ds.StudyDate[:4]}-{ds.StudyDate[4:6]}-{ds.StudyDate[6:]}")
        if abs((study_day - date.fromisoformat(sr["occurrenceDateTime"][:10])).days) > 30:
            faults.add(FindingCode.DATE_OUT_OF_WINDOW)
    listed = {i["uid"] for s in ims["series"] for i in s["instance"]}
    held = {ds.SOPInstanceUID for ds in _headers(study)}
    assert held <= listed  # the PACS never holds more than the EHR lists
    if held != listed or ims["numberOfInstances"] != len(held):
        faults.add(FindingCode.STUDY_INCOMPLETE)
    faults |= _slice_gap(_headers(study))
    return faults


def _slice_gap(headers: list[pydicom.Dataset]) -> set[FindingCode]:
    """An InstanceNumber gap together with a jump of the position along the slice normal."""
    slices = sorted((int(ds.InstanceNumber), ds) for ds in headers if "ImagePositionPatient" in ds)
    if len(slices) < 3:
        return set()
    iop = [float(v) for v in slices[0][1].ImageOrientationPatient]
    normal = np.cross(iop[:3], iop[3:])
    z = [float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])) for _, ds in slices]
    steps = np.diff(z)
    usual = float(np.median(steps))
    for (a, _), (b, _), step in zip(slices, slices[1:], steps, strict=False):
        if b - a > 1 and step > 1.5 * usual:
            return {FindingCode.SLICE_GAP}
    return set()


def test_layout_is_the_dataset_format(demo: tuple[Path, list[DemoCase], float]) -> None:
    folder, cases, _ = demo
    with (folder / "cases.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["case_id"] for r in rows] == [
        "consistent",
        "wrong-patient",
        "missing-slice",
        "reused-image",
    ]
    assert {r["case_id"]: set(r["expected"].split()) for r in rows} == {
        c.case_id: {str(code) for code in c.expected} for c in cases
    }
    assert {r["case_id"]: r["expected"] for r in rows} == {
        "consistent": "",
        "wrong-patient": "PATIENT_ID_MISMATCH",
        "missing-slice": "STUDY_INCOMPLETE SLICE_GAP",
        "reused-image": "DUPLICATE_IMAGE",
    }
    with (folder / "archive" / "archive.csv").open() as f:
        archive = [r["study_id"] for r in csv.DictReader(f)]
    assert archive and all((folder / "archive" / a / "dicom").is_dir() for a in archive)
    with (folder / "files.csv").open() as f:
        listed = sorted(r["path"] for r in csv.DictReader(f))
    assert listed == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.dcm"))
    for study in _study_dirs(folder):
        assert sorted(p.name for p in (study / "fhir").iterdir()) == [
            "ImagingStudy.json",
            "Patient.json",
            "ServiceRequest.json",
        ]


def test_fhir_parses_with_r4b_and_follows_the_conventions(
    demo: tuple[Path, list[DemoCase], float],
) -> None:
    folder, _, _ = demo
    studies = _study_dirs(folder)
    assert len(studies) == 6
    for study in studies:
        resources = {p.stem: _json(p) for p in (study / "fhir").glob("*.json")}
        for data in resources.values():
            get_fhir_model_class(data["resourceType"]).model_validate(data)
        pat, sr, ims = resources["Patient"], resources["ServiceRequest"], resources["ImagingStudy"]
        assert pat["identifier"][0]["system"] == MR_SYSTEM and _identifier(pat, "MR")
        assert _identifier(sr, ACSN) == _identifier(ims, ACSN)
        assert sr["subject"] == ims["subject"] == {"reference": f"Patient/{pat['id']}"}
        assert ims["basedOn"] == [{"reference": f"ServiceRequest/{sr['id']}"}]
        assert ims["identifier"][0]["system"] == "urn:dicom:uid"
        assert ims["identifier"][0]["value"].startswith("urn:oid:2.25.")
        (endpoint,) = ims["contained"]
        assert ims["endpoint"] == [{"reference": f"#{endpoint['id']}"}]
        assert endpoint["connectionType"]["code"] == "dicom-wado-rs"
        assert endpoint["address"] == "urn:verity:pacs"
        assert (sr["status"], sr["intent"], ims["status"]) == ("active", "order", "available")
        assert sr["occurrenceDateTime"].endswith("+01:00")
        assert sr["code"]["coding"][0]["system"] == "http://loinc.org"
        assert ims["series"][0]["bodySite"]["code"] == sr["bodySite"][0]["coding"][0]["code"]


def test_every_dicom_file_reads_and_decodes(demo: tuple[Path, list[DemoCase], float]) -> None:
    folder, _, _ = demo
    files = sorted(folder.rglob("*.dcm"))
    assert len(files) == 1 + 3 + 8 + 8 + 7 + 1
    syntaxes = set()
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID.startswith("2.25.") and len(ds.SOPInstanceUID) <= 64
        pixels = ds.pixel_array
        assert pixels.shape == (ds.Rows, ds.Columns) and pixels.std() > 10
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        if ds.Modality == "CT":
            assert ds.SOPClassUID == CTImageStorage
            assert {"RescaleIntercept", "RescaleSlope", "WindowCenter"} <= set(ds.dir())
    assert syntaxes == {ExplicitVRLittleEndian, RLELossless}


@pytest.mark.parametrize(
    "case_id,faults",
    [
        ("consistent", set()),
        ("wrong-patient", {FindingCode.PATIENT_ID_MISMATCH}),
        ("missing-slice", {FindingCode.STUDY_INCOMPLETE, FindingCode.SLICE_GAP}),
        ("reused-image", set()),  # its headers are this patient's: only the pixels are wrong
    ],
)
def test_headers_disagree_exactly_where_the_fault_is(
    demo: tuple[Path, list[DemoCase], float], case_id: str, faults: set[FindingCode]
) -> None:
    folder, _, _ = demo
    assert _faults(folder / case_id) == faults
    for study in (folder / "archive").iterdir():
        if study.is_dir():
            assert _faults(study) == set()


def test_wrong_patient_names_another_patient_in_every_instance(
    demo: tuple[Path, list[DemoCase], float],
) -> None:
    folder, _, _ = demo
    pat = _json(folder / "wrong-patient" / "fhir" / "Patient.json")
    headers = _headers(folder / "wrong-patient")
    assert {ds.PatientID for ds in headers} != {_identifier(pat, "MR")}
    assert len({(ds.PatientID, str(ds.PatientName)) for ds in headers}) == 1  # one other patient
    assert pat["name"][0]["family"].upper() not in str(headers[0].PatientName)


def test_missing_slice_is_a_gap_in_number_and_position(
    demo: tuple[Path, list[DemoCase], float],
) -> None:
    folder, _, _ = demo
    headers = sorted(_headers(folder / "missing-slice"), key=lambda ds: int(ds.InstanceNumber))
    assert [int(ds.InstanceNumber) for ds in headers] == [1, 2, 3, 4, 6, 7, 8]
    z = [float(ds.ImagePositionPatient[2]) for ds in headers]
    assert np.allclose(np.diff(z), [5, 5, 5, 10, 5, 5])
    ims = _json(folder / "missing-slice" / "fhir" / "ImagingStudy.json")
    assert [i["number"] for i in ims["series"][0]["instance"]] == list(range(1, 9))


def _display(ds: pydicom.Dataset, size: int) -> np.ndarray:
    pixels = np.asarray(ds.pixel_array, dtype=np.float32)
    return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_reused_image_is_another_patients_archived_pixels(
    demo: tuple[Path, list[DemoCase], float],
) -> None:
    folder, _, _ = demo
    (reused,) = _headers(folder / "reused-image")
    (source,) = _headers(folder / "archive" / "demo-a01")
    assert reused.file_meta.TransferSyntaxUID == RLELossless
    assert reused.Rows != source.Rows
    assert (reused.WindowCenter, reused.WindowWidth) != (source.WindowCenter, source.WindowWidth)
    assert not np.array_equal(reused.pixel_array[:5, :5], source.pixel_array[:5, :5])
    assert _corr(_display(reused, 128), _display(source, 128)) > 0.95
    assert (reused.PatientID, str(reused.PatientName)) != (
        source.PatientID,
        str(source.PatientName),
    )
    # and nothing else in the demo looks like an archived image of another patient
    for case in ("consistent", "wrong-patient", "missing-slice"):
        for ds in _headers(folder / case):
            for study in ("demo-a01", "demo-a02"):
                for archived in _headers(folder / "archive" / study):
                    assert _corr(_display(ds, 128), _display(archived, 128)) < 0.8


def test_generation_is_deterministic_small_and_fast(
    demo: tuple[Path, list[DemoCase], float], tmp_path: Path
) -> None:
    folder, cases, seconds = demo
    again = tmp_path / "again"
    assert write_demo_studies(again) == cases
    first = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys() and first == second
    assert sum(len(b) for b in first.values()) < 2_000_000
    assert seconds < 5.0  # about 0.2 s measured; generous for a shared 2-core machine
