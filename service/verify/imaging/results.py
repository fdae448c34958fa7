"""The outcome of an imaging-study verification: one result per check, what the API returns,
the audit row stores and the write-back turns into a DiagnosticReport. Plain data; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from service.verify.common import ModelInfo

Severity = Literal["high", "moderate", "low"]


class FindingCode(StrEnum):
    """The fixed vocabulary of imaging findings (../shared/data/README.md, studies section)."""

    PATIENT_ID_MISMATCH = "PATIENT_ID_MISMATCH"
    DEMOGRAPHICS_MISMATCH = "DEMOGRAPHICS_MISMATCH"
    MIXED_PATIENTS = "MIXED_PATIENTS"
    ACCESSION_MISMATCH = "ACCESSION_MISMATCH"
    MODALITY_MISMATCH = "MODALITY_MISMATCH"
    BODY_PART_MISMATCH = "BODY_PART_MISMATCH"
    LATERALITY_MISMATCH = "LATERALITY_MISMATCH"
    STUDY_INCOMPLETE = "STUDY_INCOMPLETE"
    SLICE_GAP = "SLICE_GAP"
    DUPLICATE_IMAGE = "DUPLICATE_IMAGE"
    UNREADABLE_IMAGE = "UNREADABLE_IMAGE"
    DATE_OUT_OF_WINDOW = "DATE_OUT_OF_WINDOW"
    CONTENT_MISMATCH = "CONTENT_MISMATCH"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"  # e.g. laterality when the order has no side
    COULD_NOT_CHECK = "could_not_check"  # e.g. no decodable pixels to fingerprint
    UNCERTAIN = "uncertain"  # the evidence is not clear either way: a person must look


@dataclass(frozen=True)
class CheckResult:
    """One check of one study: which finding it guards, its outcome, and the values compared
    (what the DICOM holds against what the EHR says), for the person and the EHR."""

    code: FindingCode  # the finding this check raises when it fails
    outcome: Outcome
    severity: Severity  # the finding's severity when failed (identity failures: high)
    summary: str  # one plain sentence: what was compared and what was found
    dicom: tuple[str, ...] = ()  # the distinct values found in the DICOM
    expected: tuple[str, ...] = ()  # the values the EHR (ImagingStudy/ServiceRequest/Patient) gives
    instances: tuple[str, ...] = ()  # SOP Instance UIDs implicated (at most a few)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED


@dataclass(frozen=True)
class StudyCounts:
    """Progress and completeness: what the EHR lists, what the PACS holds, what was checked."""

    series_expected: int = 0
    instances_expected: int = 0
    series_found: int = 0
    instances_found: int = 0  # listed by the PACS (QIDO / metadata)
    instances_fetched: int = 0  # pixel data retrieved
    instances_checked: int = 0  # decoded and fingerprinted


@dataclass(frozen=True)
class ImagingVerification:
    id: str
    created_at: datetime
    study_ref: str  # "ImagingStudy/<id>"
    study_uid: str
    checks: list[CheckResult]
    counts: StudyCounts
    patient_ref: str | None = None
    order_ref: str | None = None  # "ServiceRequest/<id>" (ImagingStudy.basedOn)
    accession: str | None = None
    instance_sha256: list[str] = field(default_factory=list)
    models: list[ModelInfo] = field(default_factory=list)
    caller: str | None = None
    tiers: dict[str, Any] = field(default_factory=dict)  # what each tier of checks cost

    @property
    def findings(self) -> list[FindingCode]:
        """The codes of the failed checks, in check order, each once."""
        return list(dict.fromkeys(c.code for c in self.checks if c.failed))

    @property
    def outcome(self) -> Literal["PASSED", "FAILED", "UNCERTAIN", "INCOMPLETE"]:
        """FAILED if any check failed; UNCERTAIN if one is unsure (a person decides);
        INCOMPLETE if one could not run; else PASSED."""
        if self.findings:
            return "FAILED"
        if any(c.outcome is Outcome.UNCERTAIN for c in self.checks):
            return "UNCERTAIN"
        if any(c.outcome is Outcome.COULD_NOT_CHECK for c in self.checks):
            return "INCOMPLETE"
        return "PASSED"

    @property
    def needs_attention(self) -> bool:
        return self.outcome != "PASSED"
