"""What every header check shares: one severity rule, distinct values, a few implicated UIDs,
and one way to build a CheckResult. Pure; no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.verify.imaging.results import CheckResult, FindingCode, Outcome, Severity

MAX_IMPLICATED = 5  # SOP Instance UIDs named per check: enough to find them, not a dump
MAX_VALUES = 10  # distinct DICOM values shown per check

# The severity rule: high when the images may be another patient's or the wrong side (the
# wrong-patient and wrong-site events the checks exist for); moderate when they may answer
# another exam, another day, or miss or garble part of it.
SEVERITY: dict[FindingCode, Severity] = {
    FindingCode.PATIENT_ID_MISMATCH: "high",
    FindingCode.DEMOGRAPHICS_MISMATCH: "high",
    FindingCode.MIXED_PATIENTS: "high",
    FindingCode.LATERALITY_MISMATCH: "high",
    FindingCode.DUPLICATE_IMAGE: "high",
    FindingCode.ACCESSION_MISMATCH: "moderate",
    FindingCode.MODALITY_MISMATCH: "moderate",
    FindingCode.BODY_PART_MISMATCH: "moderate",
    FindingCode.DATE_OUT_OF_WINDOW: "moderate",
    FindingCode.STUDY_INCOMPLETE: "moderate",
    FindingCode.SLICE_GAP: "moderate",
    FindingCode.UNREADABLE_IMAGE: "moderate",
    FindingCode.CONTENT_MISMATCH: "moderate",
}


def distinct(values: Iterable[object | None]) -> tuple[str, ...]:
    """The distinct non-empty values, in first-seen order, at most MAX_VALUES."""
    seen = dict.fromkeys(str(v) for v in values if v is not None and str(v) != "")
    return tuple(seen)[:MAX_VALUES]


def few(uids: Iterable[str]) -> tuple[str, ...]:
    """At most MAX_IMPLICATED distinct SOP Instance UIDs."""
    return tuple(dict.fromkeys(u for u in uids if u))[:MAX_IMPLICATED]


def result(
    code: FindingCode,
    outcome: Outcome,
    summary: str,
    *,
    dicom: Iterable[object | None] = (),
    expected: Iterable[object | None] = (),
    instances: Iterable[str] = (),
    **evidence: Any,
) -> CheckResult:
    """One CheckResult with the severity the rule gives its code."""
    return CheckResult(
        code=code,
        outcome=outcome,
        severity=SEVERITY[code],
        summary=summary,
        dicom=distinct(dicom),
        expected=distinct(expected),
        instances=few(instances),
        evidence=evidence,
    )
