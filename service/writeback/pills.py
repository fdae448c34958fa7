"""A pill verification -> the DetectedIssue Verity writes back, through the one builder.

Built with `fhir.resources.R4B` models (R4B is identical to R4 for DetectedIssue; every element
used here exists in R4 4.0.1 with the same cardinality). `pill_write` hands it to
`bundle.transaction`, which adds the AI Device and the Provenance and validates everything.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.detectedissue import DetectedIssue

from service.config import WritebackSettings
from service.verify.pills.results import PillVerification
from service.writeback import codes
from service.writeback.bundle import Activity, Entry, OutboxWrite, transaction
from service.writeback.datatypes import (
    WritebackInputError,
    instant,
    meta,
    narrative,
    ref,
    sha256_uri,
)
from service.writeback.device import AiDevice
from service.writeback.pill_evidence import confidence, evidence, issues_of, plain_detail
from service.writeback.pill_issues import DEVICE_KINDS, DEVICE_PURPOSE, DISCLAIMER

__all__ = [
    "activity",
    "detected_issue",
    "pill_device",
    "pill_write",
    "should_write",
]


def pill_device(v: PillVerification) -> AiDevice:
    """The AI Device of a pill verification: the models that made it, in the pill domain's words."""
    return AiDevice(tuple(v.models), DEVICE_PURPOSE, DEVICE_KINDS)


def detected_issue(v: PillVerification, settings: WritebackSettings | None = None) -> DetectedIssue:
    """The finding as the EHR shows it: preliminary, AI-asserted, with the order implicated."""
    cfg = settings or WritebackSettings()
    if not v.patient_ref:
        raise WritebackInputError("a DetectedIssue needs the patient (the order's subject)")
    issues = issues_of(v)
    primary = issues[0]
    implicated = [ref(v.order_ref)]
    if v.dispense_ref:
        implicated.append(ref(v.dispense_ref))
    detail = plain_detail(v, issues)
    data: dict[str, Any] = {
        "meta": meta(codes.PROFILE_DETECTED_ISSUE),
        "text": narrative(detail, DISCLAIMER),
        "identifier": [{"system": cfg.identifier_system, "value": v.id}],
        # preliminary: an AI assertion nobody has confirmed yet (see docs/fhir.md).
        "status": "preliminary",
        "code": primary.concept(),
        "severity": primary.severity,
        "patient": ref(v.patient_ref),
        "identifiedDateTime": instant(v.created_at),
        "author": pill_device(v).reference(cfg),
        "implicated": implicated,
        "evidence": evidence(v, issues),
        "detail": f"{detail} {DISCLAIMER}",
    }
    score = confidence(v)
    if score is not None:
        data["extension"] = [{"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": score}]
    return DetectedIssue(**data)


def activity(v: PillVerification) -> Activity:
    """What the Provenance records: the order and each photo (by its hash, never the photo)."""
    sources: list[dict[str, Any]] = [
        {"role": "source", "what": ref(v.order_ref, "the order checked")}
    ]
    for i, digest in enumerate(v.photo_sha256):
        sources.append(
            {
                "role": "source",
                "what": {
                    "identifier": {
                        "system": codes.URI_IDENTIFIER_SYSTEM,
                        "value": sha256_uri(digest),
                    },
                    "display": f"photo {i + 1}, SHA-256 {digest.lower()} (not stored in the EHR)",
                },
            }
        )
    return Activity(
        occurred=v.created_at,
        sources=sources,
        summary=f"Finding of verification {v.id} from the order {v.order_ref} and "
        f"{len(v.photo_sha256)} photo(s).",
        disclaimer=DISCLAIMER,
        patient=v.patient_ref,
    )


def should_write(v: PillVerification, *, write_match: bool = False) -> bool:
    """A clean MATCH is written only when configured; everything else always is."""
    return v.needs_attention or write_match


def pill_write(
    v: PillVerification, settings: WritebackSettings | None = None, *, write_match: bool = False
) -> OutboxWrite | None:
    """The validated transaction for the outbox (Device, DetectedIssue, Provenance), or None
    for a clean MATCH unless `write_match` (VERITY_OUTBOX__WRITE_MATCH)."""
    if not should_write(v, write_match=write_match):
        return None
    cfg = settings or WritebackSettings()
    issue = Entry.of(detected_issue(v, cfg), cfg.identifier_system, v.id, confidence(v))
    return transaction(pill_device(v), [issue], activity(v), cfg)
