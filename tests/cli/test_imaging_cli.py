"""`verity verify-study` and `verity evaluate studies` as a user runs them, on the real dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import run_verity
from tests.conftest import SHARED_DATA

STUDIES = SHARED_DATA / "studies"
ISSUE_11_CODES = {
    "PATIENT_ID_MISMATCH", "DEMOGRAPHICS_MISMATCH", "MIXED_PATIENTS", "ACCESSION_MISMATCH",
    "MODALITY_MISMATCH", "BODY_PART_MISMATCH", "LATERALITY_MISMATCH", "STUDY_INCOMPLETE",
    "SLICE_GAP", "DUPLICATE_IMAGE", "UNREADABLE_IMAGE", "DATE_OUT_OF_WINDOW",
}  # fmt: skip
ISSUER = {"VERITY_IMAGING__PATIENT_ID_ISSUERS": '["HOSPITAL.EXAMPLE"]'}


@pytest.mark.slow
def test_evaluate_studies_meets_the_targets_on_the_dev_set(tmp_path: Path) -> None:
    proc = run_verity(["evaluate", "studies", str(STUDIES), "--json"], VERITY_DATA_DIR=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cases"] == 47 and result["errors"] == 0
    assert result["clean_pass_rate"] == 1.0  # no false alarm on a clean study
    assert result["exact_rate_without_content"] >= 0.9
    for code in ISSUE_11_CODES:
        figures = result["per_code"][code]
        assert figures["false_alarms"] == 0, (code, figures)
        assert figures["recall"] >= (0.9 if code == "DUPLICATE_IMAGE" else 1.0), (code, figures)
    for key in ("fault_detection_rate", "exact_rate", "p50_ms", "p95_ms"):
        assert key in result
    assert not (tmp_path / "postgres").exists()  # a throwaway database, not the user's


def test_verify_study_dry_run_on_a_case_folder_prints_the_checks(tmp_path: Path) -> None:
    proc = run_verity(
        ["verify-study", "--imaging-study", str(STUDIES / "dev-026")],
        VERITY_DATA_DIR=tmp_path, **ISSUER,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "FAIL STUDY_INCOMPLETE" in out and "FAIL SLICE_GAP" in out
    assert "Outcome  FAILED: findings STUDY_INCOMPLETE, SLICE_GAP" in out
    assert "1 x DiagnosticReport" in out and "2 x DetectedIssue" in out
    assert "dry run: nothing recorded" in out


def test_verify_study_json_from_an_imaging_study_file_and_a_dicom_folder(tmp_path: Path) -> None:
    case = STUDIES / "dev-018"  # clean: no IssuerOfPatientID at all
    proc = run_verity(
        ["verify-study", "--imaging-study", str(case / "fhir" / "ImagingStudy.json"),
         "--dicom", str(case / "dicom"), "--json"],
        VERITY_DATA_DIR=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outcome"] == "PASSED" and result["findings"] == []
    assert result["recorded"] is False and result["fhir"]["status"] == "dry_run"
    kinds = [e["resource"]["resourceType"] for e in result["fhir"]["bundle"]["entry"]]
    assert kinds.count("Observation") == len(result["checks"]) == 13


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--imaging-study", "no-such-file.json"], "VERITY-4500"),
        (["--imaging-study", "ImagingStudy/1"], "VERITY-5024"),  # no FHIR server configured
        (["--imaging-study", str(STUDIES / "dev-001"), "--dicom", "/nonexistent"], "VERITY-4500"),
    ],
)
def test_verify_study_bad_input_is_one_line_with_its_code(
    tmp_path: Path, args: list[str], code: str
) -> None:
    proc = run_verity(["verify-study", *args], VERITY_DATA_DIR=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"verity: {code} ") and len(proc.stderr.splitlines()) == 1
