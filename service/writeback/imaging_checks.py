"""One imaging check -> its Observation, and a failed one -> its DetectedIssue.

Built with `fhir.resources.R4B` models (R4B is identical to R4 for Observation and DetectedIssue
in every element used here). The compared values are patient data: they go to the EHR, bounded in
number and length, and never to a log line.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.observation import Observation

from service.config import WritebackSettings
from service.verify.imaging.results import CheckResult, ImagingVerification, Outcome
from service.writeback import codes
from service.writeback.bundle import entry_url
from service.writeback.datatypes import WritebackInputError, instant, meta, narrative, ref
from service.writeback.imaging_issues import (
    CHECK_NAMES,
    DISCLAIMER,
    IDENTITY,
    ISSUES,
    OUTCOMES,
    check_code,
    component_code,
    outcome_concept,
)

MAX_VALUES = 10  # DICOM values and EHR values, each, per check
MAX_VALUE_CHARS = 200  # per value (a PN or a UID list can be long)
MAX_INSTANCES = 5  # SOP Instance UIDs named per check
MAX_EVIDENCE = 10  # scalar evidence items per check
_SEVERITY_RANK = {"high": 0, "moderate": 1, "low": 2}


@dataclass(frozen=True)
class CheckIds:
    """The stable identifier values of one check's Observation and (if failed) DetectedIssue."""

    observation: str
    issue: str


def check_ids(v: ImagingVerification) -> list[CheckIds]:
    """One pair per check, derived from the verification id and the finding code (a code that
    occurs twice gets `/2`), so the same on every retry of the same verification."""
    seen: Counter[str] = Counter()
    out = []
    for c in v.checks:
        seen[c.code] += 1
        suffix = str(c.code) if seen[c.code] == 1 else f"{c.code}/{seen[c.code]}"
        out.append(CheckIds(f"{v.id}/check/{suffix}", f"{v.id}/issue/{suffix}"))
    return out


def clip(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """A value cut to `limit` characters, marked when cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _listed(values: tuple[str, ...]) -> str:
    shown = [clip(x) for x in values[:MAX_VALUES]]
    more = len(values) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def compared_text(c: CheckResult) -> str:
    """'DICOM: a, b; EHR: c.' (the values the check compared, bounded); empty if none."""
    sides = [(n, vals) for n, vals in (("DICOM", c.dicom), ("EHR", c.expected)) if vals]
    return "; ".join(f"{n}: {_listed(vals)}" for n, vals in sides) + ("." if sides else "")


def _components(c: CheckResult) -> list[dict[str, Any]]:
    items: list[tuple[str, str]] = [("dicom", x) for x in c.dicom[:MAX_VALUES]]
    items += [("ehr", x) for x in c.expected[:MAX_VALUES]]
    items += [("instance", x) for x in c.instances[:MAX_INSTANCES]]
    scalars = [
        (k, val)
        for k, val in sorted(c.evidence.items())
        if isinstance(val, str | int | float | bool) and val is not None
    ]
    items += [("evidence", f"{k}: {val}") for k, val in scalars[:MAX_EVIDENCE]]
    return [{"code": component_code(role), "valueString": clip(str(x))} for role, x in items]


def observation(
    v: ImagingVerification,
    c: CheckResult,
    identifier: str,
    device_ref: dict[str, str],
    settings: WritebackSettings,
) -> Observation:
    """The result of one check, as the DiagnosticReport lists it: what was compared, the outcome."""
    name = CHECK_NAMES[c.code]
    outcome = OUTCOMES[c.outcome][1]
    said = " ".join(x for x in (c.summary, compared_text(c)) if x)
    data: dict[str, Any] = {
        "meta": meta(codes.PROFILE_IMAGING_CHECK),
        "text": narrative(f"{name}: {outcome.lower()}. {said}", DISCLAIMER),
        "identifier": [{"system": settings.identifier_system, "value": identifier}],
        "status": "preliminary",
        "category": [{"coding": [dict(codes.IMAGING_CATEGORY)]}],
        "code": check_code(c.code),
        "subject": ref(_patient(v)),
        "effectiveDateTime": instant(v.created_at),
        "issued": instant(v.created_at),
        "valueCodeableConcept": outcome_concept(c.outcome),
        "note": [{"text": f"{clip(c.summary, 1000)} {DISCLAIMER}"}],
        "device": device_ref,
        "derivedFrom": [ref(v.study_ref)],
    }
    if v.order_ref:
        data["basedOn"] = [ref(v.order_ref)]
    if c.outcome is Outcome.FAILED:
        data["interpretation"] = [{"coding": [dict(codes.ABNORMAL)], "text": "Check failed"}]
    components = _components(c)
    if components:
        data["component"] = components
    return Observation(**data)


def severity(c: CheckResult) -> str:
    """The check's severity, but `high` for every identity finding."""
    return "high" if c.code in IDENTITY else c.severity


def detected_issue(
    v: ImagingVerification,
    c: CheckResult,
    identifier: str,
    observation_url: str,
    device_ref: dict[str, str],
    settings: WritebackSettings,
) -> DetectedIssue:
    """A failed check as the EHR flags it: preliminary, AI-asserted, implicating the study."""
    kind = ISSUES[c.code]
    implicated = [ref(v.study_ref)]
    if v.order_ref:
        implicated.append(ref(v.order_ref))
    said = " ".join(x for x in (f"{kind.display}.", c.summary, compared_text(c)) if x)
    data: dict[str, Any] = {
        "meta": meta(codes.PROFILE_DETECTED_ISSUE),
        "text": narrative(said, DISCLAIMER),
        "identifier": [{"system": settings.identifier_system, "value": identifier}],
        "status": "preliminary",
        "code": kind.concept(),
        "severity": severity(c),
        "patient": ref(_patient(v)),
        "identifiedDateTime": instant(v.created_at),
        "author": device_ref,
        "implicated": implicated,
        "evidence": [
            {"code": [kind.concept()], "detail": [ref(observation_url, rtype="Observation")]}
        ],
        "detail": f"{said} {DISCLAIMER}",
    }
    return DetectedIssue(**data)


def most_serious_first(checks: list[CheckResult]) -> list[CheckResult]:
    """Failed checks ordered by severity, then by the finding table's rank."""
    return sorted(checks, key=lambda c: (_SEVERITY_RANK[severity(c)], ISSUES[c.code].rank))


def _patient(v: ImagingVerification) -> str:
    if not v.patient_ref:
        raise WritebackInputError("an imaging report needs the patient (the study's subject)")
    return v.patient_ref


def observation_url(settings: WritebackSettings, identifier: str) -> str:
    """The fullUrl the Observation of `identifier` has in the Bundle."""
    return entry_url(settings.identifier_system, identifier)
