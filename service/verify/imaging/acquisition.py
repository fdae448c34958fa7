"""Is this the exam that was ordered: accession, modality, body part, side and date of the
DICOM against the ServiceRequest and ImagingStudy. Pure; no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from service.verify.imaging.bodyparts import compatible
from service.verify.imaging.compare import result
from service.verify.imaging.headers import InstanceHeader
from service.verify.imaging.results import CheckResult, FindingCode, Outcome
from service.verify.imaging.study import StudyOrder

# Projection radiography: CR and DX (and film RG) all answer an "XR" order.
RADIOGRAPHY = frozenset({"CR", "DX", "RG", "XR"})
# Objects that accompany images in a study and carry no acquisition modality of their own.
NON_IMAGE = frozenset({"PR", "KO", "SR", "DOC", "REG", "SEG", "RWV", "FID"})
SIDES = frozenset({"R", "L", "B"})  # U (unpaired) and empty say nothing about the side


def accession_check(order: StudyOrder, headers: Sequence[InstanceHeader]) -> CheckResult:
    """Every AccessionNumber present must be the order's ACSN."""
    code = FindingCode.ACCESSION_MISMATCH
    if not order.accession:
        return result(code, Outcome.NOT_APPLICABLE, "The order has no accession number.")
    given = [h for h in headers if h.accession]
    if not given:
        return result(code, Outcome.COULD_NOT_CHECK, "No instance carries an AccessionNumber.")
    bad = [h for h in given if h.accession != order.accession]
    if not bad:
        summary = f"AccessionNumber agrees with the order on all {len(given)} instances."
        return result(code, Outcome.PASSED, summary, dicom=[order.accession],
                      expected=[order.accession])  # fmt: skip
    summary = f"AccessionNumber differs from the order's on {len(bad)} of {len(given)} instances."
    return result(code, Outcome.FAILED, summary, dicom=[h.accession for h in bad],
                  expected=[order.accession], instances=[h.sop_uid for h in bad])  # fmt: skip


def modality_family(modality: str) -> str:
    return "XR" if modality in RADIOGRAPHY else modality


def modality_check(order: StudyOrder, headers: Sequence[InstanceHeader]) -> CheckResult:
    """Each image's Modality must be its series' declared one (else one the study declares)."""
    code = FindingCode.MODALITY_MISMATCH
    declared = {modality_family(m.upper()) for m in order.modalities}
    if not declared:
        return result(code, Outcome.NOT_APPLICABLE, "The ImagingStudy declares no modality.")
    per_series = {s.uid: modality_family(s.modality.upper()) for s in order.series if s.modality}
    images = [h for h in headers if h.modality and h.modality not in NON_IMAGE]
    if not images:
        return result(code, Outcome.COULD_NOT_CHECK, "No image instance carries a Modality.")
    bad = [
        h for h in images
        if modality_family(h.modality or "")
        not in ({per_series[h.series_uid]} if h.series_uid in per_series else declared)
    ]  # fmt: skip
    if not bad:
        summary = f"Modality agrees with the study on all {len(images)} image instances."
        return result(code, Outcome.PASSED, summary, dicom=[h.modality for h in images],
                      expected=order.modalities)  # fmt: skip
    summary = f"Modality differs from the declared one on {len(bad)} of {len(images)} instances."
    return result(code, Outcome.FAILED, summary, dicom=[h.modality for h in bad],
                  expected=order.modalities, instances=[h.sop_uid for h in bad])  # fmt: skip


def body_part_check(order: StudyOrder, headers: Sequence[InstanceHeader]) -> CheckResult:
    """BodyPartExamined (else AnatomicRegionSequence) must be compatible with the bodySite."""
    code = FindingCode.BODY_PART_MISMATCH
    if not order.body_site:
        return result(code, Outcome.NOT_APPLICABLE, "The order names no body site.")
    verdicts = [(h, compatible(order.body_site, h.body_part, h.anatomic_regions)) for h in headers]
    known = [(h, ok) for h, ok in verdicts if ok is not None]
    shown = [h.body_part or "/".join(h.anatomic_regions) or None for h, _ in known]
    if not known:
        summary = "No instance names a body part that can be compared with the ordered site."
        return result(code, Outcome.COULD_NOT_CHECK, summary, expected=[order.body_site],
                      dicom=[h.body_part for h in headers])  # fmt: skip
    bad = [h for h, ok in known if not ok]
    if not bad:
        summary = f"The body part is compatible with the ordered site on {len(known)} instances."
        return result(code, Outcome.PASSED, summary, dicom=shown, expected=[order.body_site],
                      unknown=len(verdicts) - len(known))  # fmt: skip
    summary = f"The body part is not compatible with the ordered site on {len(bad)} instances."
    dicom = [h.body_part or "/".join(h.anatomic_regions) for h in bad]
    return result(code, Outcome.FAILED, summary, dicom=dicom, expected=[order.body_site],
                  instances=[h.sop_uid for h in bad])  # fmt: skip


def laterality_check(order: StudyOrder, headers: Sequence[InstanceHeader]) -> CheckResult:
    """The DICOM side must be the ordered one, when both are given (B accepts R and L)."""
    code = FindingCode.LATERALITY_MISMATCH
    if order.laterality not in SIDES:
        return result(code, Outcome.NOT_APPLICABLE, "The order names no side.")
    sided = [h for h in headers if h.laterality in SIDES]
    if not sided:
        summary = "No instance gives a side (Laterality / ImageLaterality)."
        return result(code, Outcome.NOT_APPLICABLE, summary, expected=[order.laterality])
    accepted = {"R", "L", "B"} if order.laterality == "B" else {order.laterality}
    bad = [h for h in sided if h.laterality not in accepted]
    if not bad:
        summary = f"The side agrees with the order on {len(sided)} instances."
        return result(code, Outcome.PASSED, summary, dicom=[h.laterality for h in sided],
                      expected=[order.laterality])  # fmt: skip
    summary = f"The side differs from the ordered one on {len(bad)} of {len(sided)} instances."
    return result(code, Outcome.FAILED, summary, dicom=[h.laterality for h in bad],
                  expected=[order.laterality], instances=[h.sop_uid for h in bad])  # fmt: skip


def order_date(order: StudyOrder) -> date | None:
    """The calendar date of the order (in the offset it was written with)."""
    when = order.ordered_at
    return when.date() if isinstance(when, datetime) else when


def date_check(
    order: StudyOrder, headers: Sequence[InstanceHeader], window_days: int
) -> CheckResult:
    """StudyDate must lie within window_days of the order's date, before or after."""
    code = FindingCode.DATE_OUT_OF_WINDOW
    ordered = order_date(order)
    if ordered is None:
        return result(code, Outcome.NOT_APPLICABLE, "The order has no date.")
    dated = [h for h in headers if h.study_date]
    if not dated:
        return result(code, Outcome.COULD_NOT_CHECK, "No instance carries a StudyDate.")
    days = {h.sop_uid: (h.study_date - ordered).days for h in dated if h.study_date}
    bad = [h for h in dated if abs(days[h.sop_uid]) > window_days]
    shown = [h.study_date.isoformat() for h in (bad or dated) if h.study_date]
    offsets = sorted(set(days.values()))
    if not bad:
        summary = f"StudyDate is within {window_days} days of the order date."
        return result(code, Outcome.PASSED, summary, dicom=shown, expected=[ordered.isoformat()],
                      days=offsets)  # fmt: skip
    summary = f"StudyDate is more than {window_days} days from the order date."
    return result(code, Outcome.FAILED, summary, dicom=shown, expected=[ordered.isoformat()],
                  instances=[h.sop_uid for h in bad], days=offsets)  # fmt: skip
