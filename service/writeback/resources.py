"""A pill verification -> the FHIR R4 resources Verity writes back (pure, no I/O).

Built with `fhir.resources.R4B` models (R4B is identical to R4 for Device, DetectedIssue and
Provenance; every element used here exists in R4 4.0.1 with the same cardinality), so every
resource is validated by construction. `transaction_bundle` turns them into one idempotent
R4 transaction for the outbox; the relay only posts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.provenance import Provenance

from service.verify.results import PillVerification
from service.writeback import codes
from service.writeback.datatypes import (
    WritebackInputError,
    instant,
    meta,
    narrative,
    photo_uri,
    ref,
    reference_type,
    token_query,
    urn,
)
from service.writeback.device import (
    WritebackConfig,
    device_identifier,
    device_search,
    resolve,
    verity_device,
)
from service.writeback.evidence import (
    confidence,
    evidence,
    issue_concept,
    issues_of,
    plain_detail,
)

__all__ = [
    "OutboxWrite",
    "WritebackConfig",
    "WritebackInputError",
    "detected_issue",
    "device_identifier",
    "photo_uri",
    "provenance",
    "reference_type",
    "should_write",
    "transaction_bundle",
    "verity_device",
]


@dataclass(frozen=True)
class OutboxWrite:
    """One outbox row: the transaction Bundle and the stable identifier it is created under."""

    bundle: dict[str, Any]
    identifier_system: str
    identifier_value: str


def detected_issue(
    v: PillVerification,
    config: WritebackConfig | None = None,
    *,
    author_reference: str | None = None,
) -> DetectedIssue:
    """The finding as the EHR shows it: preliminary, AI-asserted, with the order implicated."""
    cfg = resolve(config)
    if not v.patient_ref:
        raise WritebackInputError("a DetectedIssue needs the patient (the order's subject)")
    issues = issues_of(v)
    primary = issues[0]
    implicated = [ref(v.order_ref)]
    if v.dispense_ref:
        implicated.append(ref(v.dispense_ref))
    author = author_reference or device_search(v.models, cfg)
    detail = plain_detail(v, issues)
    data: dict[str, Any] = {
        "meta": meta(codes.PROFILE_DETECTED_ISSUE),
        "text": narrative(detail, codes.DISCLAIMER),
        "identifier": [{"system": cfg.identifier_system, "value": v.id}],
        # preliminary: an AI assertion nobody has confirmed yet (see docs/fhir.md).
        "status": "preliminary",
        "code": issue_concept(primary),
        "severity": primary.severity,
        "patient": ref(v.patient_ref),
        "identifiedDateTime": instant(v.created_at),
        "author": ref(author, cfg.device_name, "Device"),
        "implicated": implicated,
        "evidence": evidence(v, issues),
        "detail": f"{detail} {codes.DISCLAIMER}",
    }
    score = confidence(v)
    if score is not None:
        data["extension"] = [{"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": score}]
    return DetectedIssue(**data)


def provenance(
    v: PillVerification,
    target_fullurl: str,
    config: WritebackConfig | None = None,
    *,
    device_reference: str | None = None,
) -> Provenance:
    """Who (the AI Device, for the organisation) made the finding, from which order and photos."""
    cfg = resolve(config)
    device_ref = device_reference or device_search(v.models, cfg)
    ai_agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": codes.PROVENANCE_PARTICIPANT_TYPE, "code": "author", "display": "Author"}
            ]
        },
        "role": [{"coding": [dict(codes.AI_DEVICE_TYPE)]}],
        "who": ref(device_ref, cfg.device_name, "Device"),
    }
    agents = [ai_agent]
    if cfg.organization_reference:
        org = ref(cfg.organization_reference, cfg.organization_display)
        ai_agent["onBehalfOf"] = org
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": codes.PROVENANCE_PARTICIPANT_TYPE,
                            "code": "custodian",
                            "display": "Custodian",
                        }
                    ]
                },
                "who": org,
            }
        )
    entities: list[dict[str, Any]] = [
        {"role": "source", "what": ref(v.order_ref, "the order checked")}
    ]
    for i, digest in enumerate(v.photo_sha256):
        entities.append(
            {
                "role": "source",
                "what": {
                    "identifier": {
                        "system": codes.URI_IDENTIFIER_SYSTEM,
                        "value": photo_uri(digest),
                    },
                    "display": f"photo {i + 1}, SHA-256 {digest.lower()} (not stored in the EHR)",
                },
            }
        )
    target: dict[str, Any] = ref(target_fullurl, rtype="DetectedIssue")
    score = confidence(v)
    if score is not None:
        target["extension"] = [{"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": score}]
    model_text = ", ".join(f"{m.name} {m.version}" for m in v.models) or "no model recorded"
    prov_meta = meta(codes.PROFILE_PROVENANCE)
    # R4 Provenance has no identifier: this tag is what a retried create is matched on.
    prov_meta["tag"] = [{"system": cfg.provenance_tag_system, "code": v.id}]
    return Provenance(
        meta=prov_meta,
        text=narrative(
            f"Finding of verification {v.id} made by {cfg.device_name} {cfg.software_version} "
            f"({model_text}) from the order {v.order_ref} and {len(v.photo_sha256)} photo(s).",
            codes.DISCLAIMER,
        ),
        target=[target],
        occurredDateTime=instant(v.created_at),
        recorded=instant(v.created_at),
        reason=[{"coding": [dict(codes.AIAST)]}],
        activity={
            "coding": [{"system": codes.V3_DATA_OPERATION, "code": "CREATE", "display": "create"}]
        },
        agent=agents,
        entity=entities,
    )


def should_write(v: PillVerification, config: WritebackConfig | None = None) -> bool:
    """A clean MATCH is written only when configured; everything else always is."""
    return v.needs_attention or resolve(config).write_match


def transaction_bundle(
    v: PillVerification, config: WritebackConfig | None = None
) -> OutboxWrite | None:
    """One idempotent transaction: conditional creates of Device, DetectedIssue, Provenance."""
    cfg = resolve(config)
    if not should_write(v, cfg):
        return None
    dev_value = device_identifier(v.models, cfg)
    dev_url = urn(cfg.device_identifier_system, dev_value)
    issue_url = urn(cfg.identifier_system, v.id)
    prov_url = urn(cfg.provenance_tag_system, v.id)
    device = verity_device(v.models, cfg)
    issue = detected_issue(v, cfg, author_reference=dev_url)
    prov = provenance(v, issue_url, cfg, device_reference=dev_url)
    entries = [
        _entry(
            dev_url,
            _json(device),
            token_query("identifier", cfg.device_identifier_system, dev_value),
        ),
        _entry(issue_url, _json(issue), token_query("identifier", cfg.identifier_system, v.id)),
        _entry(prov_url, _json(prov), token_query("_tag", cfg.provenance_tag_system, v.id)),
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return OutboxWrite(bundle, cfg.identifier_system, v.id)


def _json(resource: Device | DetectedIssue | Provenance) -> dict[str, Any]:
    out: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True)
    return out


def _entry(full_url: str, resource: dict[str, Any], if_none_exist: str) -> dict[str, Any]:
    rtype = resource["resourceType"]
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": rtype, "ifNoneExist": if_none_exist},
    }
