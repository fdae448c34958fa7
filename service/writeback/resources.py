"""A pill verification -> the FHIR R4 resources Verity writes back (pure, no I/O).

Built with `fhir.resources.R4B` models (R4B is identical to R4 for Device, DetectedIssue and
Provenance; every element used here exists in R4 4.0.1 with the same cardinality), so every
resource is validated by construction. `transaction_bundle` turns them into one idempotent
R4 transaction for the outbox; the relay only posts it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.provenance import Provenance

from service import __version__
from service.verify.results import ModelInfo, PillVerification
from service.writeback import codes
from service.writeback.evidence import (
    confidence,
    evidence,
    issue_concept,
    issues_of,
    plain_detail,
)


class WritebackInputError(ValueError):
    """The verification lacks something every written resource must carry."""


@dataclass(frozen=True)
class WritebackConfig:
    """Who Verity is on the EHR's FHIR server and what it writes there."""

    identifier_system: str = "urn:verity:verification"
    device_identifier_system: str = "urn:verity:device"
    provenance_tag_system: str = "urn:verity:provenance"
    device_id: str = "verity"
    device_name: str = "Verity pill verification"
    software_version: str = __version__
    manufacturer: str | None = None
    organization_reference: str | None = None  # e.g. "Organization/123"
    organization_display: str | None = None
    write_match: bool = False


@dataclass(frozen=True)
class OutboxWrite:
    """One outbox row: the transaction Bundle and the stable identifier it is created under."""

    bundle: dict[str, Any]
    identifier_system: str
    identifier_value: str


def _cfg(config: WritebackConfig | None) -> WritebackConfig:
    return config if config is not None else WritebackConfig()


def _urn(*parts: str) -> str:
    """A fullUrl that is the same on every retry, so a re-sent Bundle is byte-identical."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '|'.join(parts))}"


def _narrative(*paragraphs: str) -> dict[str, str]:
    body = "".join(f"<p>{escape(p, quote=False)}</p>" for p in paragraphs)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def _meta(profile: str) -> dict[str, Any]:
    return {"profile": [profile], "security": [dict(codes.AIAST)]}


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        raise WritebackInputError("verification time has no time zone; FHIR instants need one")
    return value.isoformat()


def _ref(reference: str, display: str | None = None, rtype: str | None = None) -> dict[str, str]:
    """A Reference that also states its resource type, so readers need not parse the URL."""
    out = {"reference": reference}
    rtype = rtype or reference_type(reference)
    if rtype:
        out["type"] = rtype
    if display:
        out["display"] = display
    return out


def reference_type(reference: str) -> str | None:
    """The resource type a relative, absolute or conditional reference points at, if it says."""
    if reference.startswith(("urn:", "#")):
        return None
    path = reference.split("?", 1)[0].rstrip("/").split("/")
    if "_history" in path:
        path = path[: path.index("_history")]
    if "?" in reference:
        candidate = path[-1]
    elif len(path) >= 2:
        candidate = path[-2]
    else:
        return None
    return candidate if candidate[:1].isupper() and candidate.isalnum() else None


def device_identifier(models: Sequence[ModelInfo], config: WritebackConfig | None = None) -> str:
    """One Device per (Verity version, model set): a new model version never reuses an old one."""
    cfg = _cfg(config)
    spec = ";".join([cfg.software_version, *sorted(f"{m.name}={m.version}" for m in models)])
    return f"{cfg.device_id}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"


def verity_device(models: Sequence[ModelInfo], config: WritebackConfig | None = None) -> Device:
    """The AI Device (AI Transparency IG AI-Device shape) that authors every finding."""
    cfg = _cfg(config)
    names = [{"name": cfg.device_name, "type": "user-friendly-name"}]
    names += [{"name": m.name, "type": "model-name"} for m in models]
    versions: list[dict[str, Any]] = [{"type": {"text": "software"}, "value": cfg.software_version}]
    versions += [
        {
            "type": {"text": "model"},
            "component": {"system": f"{cfg.device_identifier_system}:model", "value": m.name},
            "value": m.version,
        }
        for m in models
    ]
    model_text = ", ".join(f"{m.name} {m.version}" for m in models) or "none recorded"
    data: dict[str, Any] = {
        "meta": _meta(codes.PROFILE_DEVICE),
        "text": _narrative(
            f"{cfg.device_name} {cfg.software_version}: AI system that checks dispensed pills "
            f"against the prescribed order. Models: {model_text}.",
        ),
        "extension": [
            {
                "url": codes.AI_KIND_EXTENSION,
                "valueCodeableConcept": {"coding": [codes.AI_KIND_HYBRID]},
            }
        ],
        "identifier": [
            {"system": cfg.device_identifier_system, "value": device_identifier(models, cfg)}
        ],
        "status": "active",
        "deviceName": names,
        "type": {"coding": [dict(codes.AI_DEVICE_TYPE)], "text": "Artificial Intelligence"},
        "version": versions,
    }
    if cfg.manufacturer:
        data["manufacturer"] = cfg.manufacturer
    if cfg.organization_reference:
        data["owner"] = _ref(cfg.organization_reference, cfg.organization_display)
    return Device(**data)


def detected_issue(
    v: PillVerification,
    config: WritebackConfig | None = None,
    *,
    author_reference: str | None = None,
) -> DetectedIssue:
    """The finding as the EHR shows it: preliminary, AI-asserted, with the order implicated."""
    cfg = _cfg(config)
    if not v.patient_ref:
        raise WritebackInputError("a DetectedIssue needs the patient (the order's subject)")
    issues = issues_of(v)
    primary = issues[0]
    implicated = [_ref(v.order_ref)]
    if v.dispense_ref:
        implicated.append(_ref(v.dispense_ref))
    author = author_reference or (
        f"Device?identifier={cfg.device_identifier_system}|{device_identifier(v.models, cfg)}"
    )
    detail = plain_detail(v, issues)
    data: dict[str, Any] = {
        "meta": _meta(codes.PROFILE_DETECTED_ISSUE),
        "text": _narrative(detail, codes.DISCLAIMER),
        "identifier": [{"system": cfg.identifier_system, "value": v.id}],
        # preliminary: an AI assertion nobody has confirmed yet (see docs/fhir.md).
        "status": "preliminary",
        "code": issue_concept(primary),
        "severity": primary.severity,
        "patient": _ref(v.patient_ref),
        "identifiedDateTime": _instant(v.created_at),
        "author": _ref(author, cfg.device_name, "Device"),
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
    cfg = _cfg(config)
    device_ref = device_reference or (
        f"Device?identifier={cfg.device_identifier_system}|{device_identifier(v.models, cfg)}"
    )
    ai_agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": codes.PROVENANCE_PARTICIPANT_TYPE, "code": "author", "display": "Author"}
            ]
        },
        "role": [{"coding": [dict(codes.AI_DEVICE_TYPE)]}],
        "who": _ref(device_ref, cfg.device_name, "Device"),
    }
    agents = [ai_agent]
    if cfg.organization_reference:
        org = _ref(cfg.organization_reference, cfg.organization_display)
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
        {"role": "source", "what": _ref(v.order_ref, "the order checked")}
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
    target: dict[str, Any] = _ref(target_fullurl, rtype="DetectedIssue")
    score = confidence(v)
    if score is not None:
        target["extension"] = [{"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": score}]
    model_text = ", ".join(f"{m.name} {m.version}" for m in v.models) or "no model recorded"
    meta = _meta(codes.PROFILE_PROVENANCE)
    # R4 Provenance has no identifier: this tag is what a retried create is matched on.
    meta["tag"] = [{"system": cfg.provenance_tag_system, "code": v.id}]
    return Provenance(
        meta=meta,
        text=_narrative(
            f"Finding of verification {v.id} made by {cfg.device_name} {cfg.software_version} "
            f"({model_text}) from the order {v.order_ref} and {len(v.photo_sha256)} photo(s).",
            codes.DISCLAIMER,
        ),
        target=[target],
        occurredDateTime=_instant(v.created_at),
        recorded=_instant(v.created_at),
        reason=[{"coding": [dict(codes.AIAST)]}],
        activity={
            "coding": [{"system": codes.V3_DATA_OPERATION, "code": "CREATE", "display": "create"}]
        },
        agent=agents,
        entity=entities,
    )


def photo_uri(sha256_hex: str) -> str:
    """RFC 6920 named-information URI of a photo, so only its hash ever leaves Verity."""
    import base64

    raw = bytes.fromhex(sha256_hex)
    if len(raw) != 32:
        raise WritebackInputError("photo digest is not a SHA-256")
    return "ni:///sha-256;" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def should_write(v: PillVerification, config: WritebackConfig | None = None) -> bool:
    """A clean MATCH is written only when configured; everything else always is."""
    return v.needs_attention or _cfg(config).write_match


def transaction_bundle(
    v: PillVerification, config: WritebackConfig | None = None
) -> OutboxWrite | None:
    """One idempotent transaction: conditional creates of Device, DetectedIssue, Provenance."""
    cfg = _cfg(config)
    if not should_write(v, cfg):
        return None
    dev_value = device_identifier(v.models, cfg)
    dev_url = _urn(cfg.device_identifier_system, dev_value)
    issue_url = _urn(cfg.identifier_system, v.id)
    prov_url = _urn(cfg.provenance_tag_system, v.id)
    device = verity_device(v.models, cfg)
    issue = detected_issue(v, cfg, author_reference=dev_url)
    prov = provenance(v, issue_url, cfg, device_reference=dev_url)
    entries = [
        _entry(
            dev_url, _json(device), _query("identifier", cfg.device_identifier_system, dev_value)
        ),
        _entry(issue_url, _json(issue), _query("identifier", cfg.identifier_system, v.id)),
        _entry(prov_url, _json(prov), _query("_tag", cfg.provenance_tag_system, v.id)),
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return OutboxWrite(bundle, cfg.identifier_system, v.id)


def _query(param: str, system: str, value: str) -> str:
    """A token search, percent-encoded so a `+`, `&` or `%` in an id cannot change its meaning."""
    return f"{param}={quote(system, safe=':/')}|{quote(value, safe=':/')}"


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
