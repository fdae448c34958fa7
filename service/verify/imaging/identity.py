"""Whose images are these: PatientID and its issuer against the MRN, name, birth date and sex
against the Patient, and whether the study carries more than one patient. Pure; no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from service.verify.imaging.compare import result
from service.verify.imaging.headers import InstanceHeader
from service.verify.imaging.results import CheckResult, FindingCode, Outcome
from service.verify.imaging.study import StudyOrder

SEX_OF_GENDER = {"male": "M", "female": "F", "other": "O"}  # FHIR "unknown": nothing to compare
_COVERED = "some instances carry another patient, which MIXED_PATIENTS reports"


def _components(parts: Iterable[str]) -> tuple[str, ...]:
    """Name components compared ignoring case, inner spacing and trailing empty components."""
    comps = [" ".join(p.split()).casefold() for p in parts]
    while comps and not comps[-1]:
        comps.pop()
    return tuple(comps)


def dicom_name(pn: str) -> tuple[str, ...]:
    """FAMILY^GIVEN^MIDDLE of a PN value (alphabetic group; prefix and suffix not compared)."""
    return _components(pn.split("=")[0].split("^")[:3])


def ehr_name(family: str | None, given: Sequence[str]) -> tuple[str, ...]:
    """family, given[0], the further given names (the DICOM middle name component)."""
    return _components([family or "", given[0] if given else "", " ".join(given[1:])])


def accepted_issuers(order: StudyOrder, configured: Iterable[str]) -> frozenset[str]:
    """Our assigning authority: the Patient's MRN system plus the configured issuer names."""
    names = [order.mrn_system or "", *configured]
    return frozenset(n.strip().casefold() for n in names if n.strip())


def issuer_ok(h: InstanceHeader, accepted: frozenset[str]) -> bool:
    """An absent issuer is not a mismatch; a UniversalEntityID, when given, decides."""
    if h.issuer_universal:
        return h.issuer_universal.strip().casefold() in accepted
    return h.issuer is None or h.issuer.strip().casefold() in accepted


@dataclass(frozen=True)
class _Identity:
    """One instance's identity as compared with the EHR."""

    header: InstanceHeader
    id_ok: bool  # PatientID equals the MRN and the issuer is ours
    differs: tuple[str, ...]  # demographic fields that disagree with the Patient

    @property
    def right(self) -> bool:
        return self.id_ok and not self.differs


def _differs(h: InstanceHeader, order: StudyOrder) -> tuple[str, ...]:
    fields = []
    if h.patient_name and (order.family or order.given):
        if dicom_name(h.patient_name) != ehr_name(order.family, order.given):
            fields.append("name")
    if h.birth_date and order.birth_date and h.birth_date != order.birth_date:
        fields.append("birth date")
    sex = SEX_OF_GENDER.get(order.gender or "")
    if h.sex and sex and h.sex != sex:
        fields.append("sex")
    return tuple(fields)


def _mixed(headers: Sequence[InstanceHeader]) -> list[str]:
    """The identity attributes that take more than one value across the study's instances."""
    values: dict[str, set[object]] = {
        "PatientID": {h.patient_id for h in headers},
        "PatientName": {dicom_name(h.patient_name) for h in headers if h.patient_name},
        "PatientBirthDate": {h.birth_date for h in headers},
        "PatientSex": {h.sex for h in headers},
    }
    return [k for k, v in values.items() if len(v - {None}) > 1]


def _ehr_values(order: StudyOrder) -> list[str | None]:
    name = "^".join(ehr_name(order.family, order.given)).upper() or None
    return [name, order.birth_date.isoformat() if order.birth_date else None, order.gender]


def _dicom_values(h: InstanceHeader) -> list[str | None]:
    born = h.birth_date.isoformat() if h.birth_date else None
    return [h.patient_id, h.patient_name, born, h.sex]


def identity_checks(
    order: StudyOrder, headers: Sequence[InstanceHeader], issuers: Iterable[str]
) -> list[CheckResult]:
    """PATIENT_ID_MISMATCH, DEMOGRAPHICS_MISMATCH and MIXED_PATIENTS, in that order."""
    configured = [i for i in issuers if i.strip()]
    accepted = accepted_issuers(order, configured)
    people = [
        _Identity(h, h.patient_id == order.mrn and issuer_ok(h, accepted), _differs(h, order))
        for h in headers
        if h.patient_id
    ]
    mixed = _mixed(headers)
    covered = bool(mixed) and 2 * sum(p.right for p in people) >= len(headers)
    return [
        _patient_id(order, people, covered, configured),
        _demographics(order, people, covered),
        _mixed_patients(headers, people, mixed),
    ]


def _patient_id(
    order: StudyOrder, people: list[_Identity], covered: bool, configured: list[str]
) -> CheckResult:
    code = FindingCode.PATIENT_ID_MISMATCH
    expected = [order.mrn, order.mrn_system, *configured]
    if not order.mrn:
        return result(code, Outcome.COULD_NOT_CHECK, "The Patient has no MRN to compare with.")
    if not people:
        return result(code, Outcome.COULD_NOT_CHECK, "No instance carries a PatientID.")
    bad = [p.header for p in people if not p.id_ok]
    if not bad:
        summary = f"PatientID and issuer agree with the MRN on all {len(people)} instances."
        return result(code, Outcome.PASSED, summary, dicom=[order.mrn], expected=expected)
    outcome = Outcome.NOT_APPLICABLE if covered else Outcome.FAILED
    summary = (
        f"PatientID or its issuer differs from the MRN on {len(bad)} of {len(people)} instances"
        + (f"; {_COVERED}." if covered else ".")
    )
    dicom = [v for h in bad for v in (h.patient_id, h.issuer, h.issuer_universal)]
    ids = [h.sop_uid for h in bad]
    return result(code, outcome, summary, dicom=dicom, expected=expected, instances=ids,
                  differing=len(bad), checked=len(people))  # fmt: skip


def _demographics(order: StudyOrder, people: list[_Identity], covered: bool) -> CheckResult:
    code = FindingCode.DEMOGRAPHICS_MISMATCH
    expected = _ehr_values(order)
    agreeing = [p for p in people if p.id_ok]
    if not any(expected):
        return result(code, Outcome.COULD_NOT_CHECK, "The Patient has no name, birth date or sex.")
    if not agreeing:
        summary = "No instance carries the patient's MRN, so demographics were not compared."
        return result(code, Outcome.NOT_APPLICABLE, summary, expected=expected)
    bad = [p for p in agreeing if p.differs]
    if not bad:
        summary = f"Name, birth date and sex agree on all {len(agreeing)} instances with the MRN."
        return result(code, Outcome.PASSED, summary, expected=expected)
    fields = sorted({f for p in bad for f in p.differs})
    outcome = Outcome.NOT_APPLICABLE if covered else Outcome.FAILED
    summary = (
        f"The DICOM {' and '.join(fields)} do not match the Patient on {len(bad)} of"
        f" {len(agreeing)} instances whose PatientID agrees"
        + (f"; {_COVERED}." if covered else ".")
    )
    dicom = [v for p in bad for v in _dicom_values(p.header)[1:]]
    ids = [p.header.sop_uid for p in bad]
    return result(code, outcome, summary, dicom=dicom, expected=expected, instances=ids,
                  fields=fields, differing=len(bad), checked=len(agreeing))  # fmt: skip


def _mixed_patients(
    headers: Sequence[InstanceHeader], people: list[_Identity], mixed: list[str]
) -> CheckResult:
    code = FindingCode.MIXED_PATIENTS
    if not headers:
        return result(code, Outcome.COULD_NOT_CHECK, "The PACS holds no instance of the study.")
    if not mixed:
        summary = f"All {len(headers)} instances carry one patient identity."
        return result(code, Outcome.PASSED, summary)
    others = [p.header for p in people if not p.right] or list(headers)
    summary = (
        f"The instances carry more than one patient identity ({', '.join(mixed)} differ);"
        f" {len(others)} of {len(headers)} do not carry the patient of the order."
    )
    dicom = [" ".join(str(v) for v in _dicom_values(h) if v) for h in headers]
    ids = [h.sop_uid for h in others]
    return result(code, Outcome.FAILED, summary, dicom=dicom, instances=ids, attributes=mixed,
                  not_the_patient=len(others))  # fmt: skip
