"""Every imaging check, cheapest first (DESIGN.md): the header checks over the instance headers
against the EHR's view of the study, and the pixel-result checks the workflow calls with what
decoding and the duplicate lookup found. Pure decisions; no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from service.verify.imaging.acquisition import (
    accession_check,
    body_part_check,
    date_check,
    laterality_check,
    modality_check,
)
from service.verify.imaging.compare import MAX_IMPLICATED, result
from service.verify.imaging.completeness import incomplete_check, slice_gap_check
from service.verify.imaging.headers import InstanceHeader
from service.verify.imaging.identity import identity_checks
from service.verify.imaging.results import CheckResult, FindingCode, Outcome
from service.verify.imaging.study import StudyOrder


@dataclass(frozen=True)
class DuplicateMatch:
    """An instance of this study whose pixels (fingerprint or embedding) or SOP Instance UID the
    archive already holds under another patient's study."""

    sop_uid: str
    other_study_uid: str
    distance: float | None  # Hamming bits (pixels), cosine (embedding); None for a SOP UID
    kind: Literal["pixels", "embedding", "sop_uid"]


def header_checks(
    order: StudyOrder,
    headers: Sequence[InstanceHeader],
    *,
    date_window_days: int,
    accepted_issuers: Iterable[str],
) -> list[CheckResult]:
    """One result per header finding code, in check order; `accepted_issuers` are the
    configured names of our assigning authority besides the Patient's MRN system."""
    return [
        *identity_checks(order, headers, accepted_issuers),
        accession_check(order, headers),
        modality_check(order, headers),
        body_part_check(order, headers),
        laterality_check(order, headers),
        date_check(order, headers, date_window_days),
        incomplete_check(order, headers),
        slice_gap_check(headers),
    ]


def unreadable_check(failures: Sequence[tuple[str, str]], checked: int) -> CheckResult:
    """UNREADABLE_IMAGE from the decode step: (sop_uid, reason) per instance that failed."""
    code = FindingCode.UNREADABLE_IMAGE
    if failures:
        summary = f"{len(failures)} of {max(checked, len(failures))} instances cannot be decoded."
        reasons = dict(list(failures)[:MAX_IMPLICATED])
        return result(code, Outcome.FAILED, summary, dicom=[r for _, r in failures],
                      instances=[u for u, _ in failures], reasons=reasons,
                      failed=len(failures), checked=checked)  # fmt: skip
    if checked <= 0:
        return result(code, Outcome.COULD_NOT_CHECK, "No instance was decoded.")
    return result(code, Outcome.PASSED, f"All {checked} decoded instances are readable.",
                  checked=checked)  # fmt: skip


def duplicate_check(matches: Sequence[DuplicateMatch], checked: int) -> CheckResult:
    """DUPLICATE_IMAGE from the archive lookup: same pixels or SOP UID under another patient."""
    code = FindingCode.DUPLICATE_IMAGE
    if matches:
        kinds = sorted({m.kind for m in matches})
        summary = (
            f"{len({m.sop_uid for m in matches})} instances match images of another patient's"
            f" study in the archive ({' and '.join(kinds)})."
        )
        shown = [asdict(m) for m in matches[:MAX_IMPLICATED]]
        return result(code, Outcome.FAILED, summary, dicom=[m.other_study_uid for m in matches],
                      instances=[m.sop_uid for m in matches], matches=shown,
                      checked=checked)  # fmt: skip
    if checked <= 0:
        return result(code, Outcome.COULD_NOT_CHECK, "No image could be fingerprinted.")
    return result(code, Outcome.PASSED, f"None of {checked} images matches another patient's.",
                  checked=checked)  # fmt: skip
