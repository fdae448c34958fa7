"""An imaging-study verification -> the DiagnosticReport, one Observation per check and one
DetectedIssue per failed check, through the one builder (`bundle.transaction`), which adds the
AI Device and the Provenance and validates everything against `fhir_profiles/`.

Always written, clean or not: the preliminary report is the EHR's record that the study was
checked. Built with `fhir.resources.R4B` models; every element used exists in R4 4.0.1 with the
same cardinality (DiagnosticReport has no R4B/R4 difference in them).
"""

from __future__ import annotations

import hashlib
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from service.config import WritebackSettings
from service.verify.imaging.results import ImagingVerification, Outcome
from service.writeback import codes
from service.writeback.bundle import Activity, Entry, OutboxWrite, transaction
from service.writeback.codes import IssueKind
from service.writeback.datatypes import (
    WritebackInputError,
    instant,
    meta,
    narrative,
    ref,
    sha256_uri,
)
from service.writeback.device import AiDevice
from service.writeback.imaging_checks import (
    check_ids,
    clip,
    detected_issue,
    most_serious_first,
    observation,
    observation_url,
)
from service.writeback.imaging_issues import (
    CHECK_INCOMPLETE,
    CHECK_NAMES,
    CHECK_UNCERTAIN,
    DEVICE_KINDS,
    DEVICE_PURPOSE,
    DISCLAIMER,
    ISSUES,
    MODEL_NOTES,
    NO_FINDING,
    OUTCOMES,
    REPORT_CODE,
    verity_concept,
)

__all__ = ["activity", "diagnostic_report", "imaging_device", "imaging_write"]

# Provenance entities: every checked instance is named by count and by one digest over all
# their SHA-256s; at most this many are also listed one by one (a study can hold thousands).
MAX_INSTANCE_HASHES = 20


def imaging_device(v: ImagingVerification) -> AiDevice:
    """The AI Device of an imaging verification: its models, in the imaging domain's words."""
    return AiDevice(tuple(v.models), DEVICE_PURPOSE, DEVICE_KINDS, MODEL_NOTES)


def conclusion_kinds(v: ImagingVerification) -> list[IssueKind]:
    """conclusionCode: the failed findings, most serious first; else NO_FINDING or, when a check
    could not be made, CHECK_INCOMPLETE."""
    failed = most_serious_first([c for c in v.checks if c.failed])
    kinds = list({c.code: ISSUES[c.code] for c in failed}.values())
    if kinds:
        return kinds
    if v.outcome == "UNCERTAIN":
        return [CHECK_UNCERTAIN]
    return [CHECK_INCOMPLETE if v.outcome == "INCOMPLETE" else NO_FINDING]


def conclusion(v: ImagingVerification) -> str:
    """A plain summary a radiographer reads in the EHR's report list."""
    applied = [c for c in v.checks if c.outcome is not Outcome.NOT_APPLICABLE]
    not_made = [CHECK_NAMES[c.code] for c in v.checks if c.outcome is Outcome.COULD_NOT_CHECK]
    if v.findings:
        kinds = conclusion_kinds(v)
        head = f"Verity found {len(kinds)} problem(s) with this study: " + "; ".join(
            k.display for k in kinds
        )
    elif not_made:
        head = "No problem found, but not every check could be made"
    else:
        head = (
            "No problem found: the study matches the order and the patient on all "
            f"{len(applied)} checks that applied"
        )
    parts = [f"{head}."]
    if not_made:
        parts.append(f"Could not check: {', '.join(not_made)}.")
    n = v.counts
    listed = (
        f" of the {n.instances_expected} the ImagingStudy lists" if n.instances_expected else ""
    )
    parts.append(
        f"The PACS holds {n.instances_found} instance(s){listed}; {n.instances_checked} were "
        "checked."
    )
    return " ".join(parts)


def diagnostic_report(
    v: ImagingVerification,
    results: list[str],
    settings: WritebackSettings,
) -> DiagnosticReport:
    """The report of all checks of one study: preliminary, AI-asserted, results = the checks."""
    if not v.patient_ref:
        raise WritebackInputError("an imaging report needs the patient (the study's subject)")
    summary = conclusion(v)
    lines = [
        f"{CHECK_NAMES[c.code]}: {OUTCOMES[c.outcome][1].lower()}. {clip(c.summary, 300)}"
        for c in v.checks
    ]
    code, display = REPORT_CODE
    data: dict[str, Any] = {
        "meta": meta(codes.PROFILE_IMAGING_REPORT),
        "text": narrative(summary, *lines, DISCLAIMER),
        "identifier": [{"system": settings.identifier_system, "value": v.id}],
        # preliminary: an AI assertion nobody has confirmed yet (see docs/fhir.md).
        "status": "preliminary",
        "category": [{"coding": [dict(codes.RADIOLOGY_SECTION)]}],
        "code": {
            "coding": [{"system": codes.IMAGING_REPORT_SYSTEM, "code": code, "display": display}],
            "text": display,
        },
        "subject": ref(v.patient_ref),
        "effectiveDateTime": instant(v.created_at),
        "issued": instant(v.created_at),
        # No performer: R4 allows only Practitioner(Role), Organization or CareTeam there; the
        # AI is named by each Observation.device and by the Provenance.
        "result": [ref(url, rtype="Observation") for url in results],
        "imagingStudy": [ref(v.study_ref)],
        "conclusion": f"{summary} {DISCLAIMER}",
        "conclusionCode": [verity_concept(k) for k in conclusion_kinds(v)],
    }
    if v.order_ref:
        data["basedOn"] = [ref(v.order_ref)]
    return DiagnosticReport(**data)


def _hash_entity(digest: str, display: str) -> dict[str, Any]:
    return {
        "role": "source",
        "what": {
            "identifier": {"system": codes.URI_IDENTIFIER_SYSTEM, "value": sha256_uri(digest)},
            "display": display,
        },
    }


def activity(v: ImagingVerification) -> Activity:
    """What the Provenance records: the study, its order, and the checked instances by hash
    (count + one digest over all, and at most MAX_INSTANCE_HASHES one by one)."""
    sources: list[dict[str, Any]] = [
        {"role": "source", "what": ref(v.study_ref, "the imaging study checked")}
    ]
    if v.order_ref:
        sources.append({"role": "source", "what": ref(v.order_ref, "the order of the study")})
    hashes = [h.lower() for h in v.instance_sha256]
    if hashes:
        joined = "\n".join(sorted(hashes)).encode()
        digest = hashlib.sha256(joined).hexdigest()
        sources.append(
            _hash_entity(
                digest,
                f"all {len(hashes)} checked instance(s): SHA-256 {digest} of their sorted, "
                "newline-joined SHA-256 digests (the instances are not stored in the EHR)",
            )
        )
    for i, h in enumerate(hashes[:MAX_INSTANCE_HASHES]):
        sources.append(_hash_entity(h, f"instance {i + 1} of {len(hashes)}, SHA-256 {h}"))
    return Activity(
        occurred=v.created_at,
        sources=sources,
        summary=f"Report of imaging verification {v.id} from the study {v.study_ref}"
        + (f", the order {v.order_ref}" if v.order_ref else "")
        + f" and {len(hashes)} checked instance(s).",
        disclaimer=DISCLAIMER,
        patient=v.patient_ref,
    )


def imaging_write(v: ImagingVerification, settings: WritebackSettings | None = None) -> OutboxWrite:
    """The validated transaction for the outbox: Device, DiagnosticReport, one Observation per
    check, one DetectedIssue per failed check, Provenance."""
    cfg = settings or WritebackSettings()
    if not v.checks:
        raise WritebackInputError("an imaging report needs at least one check")
    device = imaging_device(v)
    dev_ref = device.reference(cfg)
    system = cfg.identifier_system
    ids = check_ids(v)
    obs_urls = [observation_url(cfg, i.observation) for i in ids]
    report = diagnostic_report(v, obs_urls, cfg)
    entries = [Entry.of(report, system, v.id)]
    entries += [
        Entry.of(observation(v, c, i.observation, dev_ref, cfg), system, i.observation)
        for c, i in zip(v.checks, ids, strict=True)
    ]
    entries += [
        Entry.of(
            detected_issue(v, c, i.issue, observation_url(cfg, i.observation), dev_ref, cfg),
            system,
            i.issue,
        )
        for c, i in zip(v.checks, ids, strict=True)
        if c.failed
    ]
    return transaction(device, entries, activity(v), cfg)
