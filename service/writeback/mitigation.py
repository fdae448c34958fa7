"""A person's decision on a flagged verification -> the EHR: the verification's DetectedIssue(s)
updated with `mitigation` (action from v3 ActDetectedIssueManagementCode, author the person),
and a Provenance naming the person, as one idempotent transaction.

Built from the verification's own first write (its outbox Bundle): every entry it referenced
(Device, model cards, other resources) is sent again as the same conditional create, so the
`urn:uuid:` references still resolve and nothing is created twice; each DetectedIssue becomes a
conditional update on its identifier; the AI Provenance of the first write is left as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.provenance import Provenance

from service.config import WritebackSettings
from service.writeback import codes
from service.writeback.bundle import OutboxWrite, refuse_invalid
from service.writeback.datatypes import instant, narrative, ref, token_query, urn

Resource = dict[str, Any]

# What the person decided -> (code, display) in v3 ActCode (ActDetectedIssueManagementCode).
CONFIRMED_SUPPLY = ("14", "Supply Appropriate")  # pills: the dispensed product is right
CONFIRMED_THERAPY = ("1", "Therapy Appropriate")  # imaging: the study is right as it is
OTHER_ACTION = ("8", "Other Action Taken")  # removed, sent back, other: the text says which
DECISION_SYSTEM = "urn:verity:decision"  # the outbox row's own key; never written to FHIR


@dataclass(frozen=True)
class Mitigation:
    decision_id: str
    verification_id: str
    code: tuple[str, str]
    text: str  # in the person's words: "Wrong product removed", or their reason
    author_ref: str
    author_display: str | None
    occurred: datetime
    patient_ref: str | None


def mitigation_write(
    original: Resource, m: Mitigation, settings: WritebackSettings
) -> OutboxWrite | None:
    """The transaction for a decision, or None when the first write has no DetectedIssue."""
    entries: list[Resource] = []
    issues: list[Resource] = []
    for entry in original.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Provenance":
            continue
        if resource.get("resourceType") == "DetectedIssue":
            entry = _with_mitigation(entry, m, settings)
            issues.append(entry)
        entries.append(entry)
    if not issues:
        return None
    refuse_invalid(entries, settings.canonical_base)  # Verity's profiles, mitigation included
    prov = _provenance_entry(issues, m)
    # A person's Provenance is no AI output: it claims no Verity profile, so it is held to
    # base R4 (fhir.resources raises on anything R4 does not allow).
    Provenance.model_validate(prov["resource"])
    entries.append(prov)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return OutboxWrite(bundle, "DetectedIssue", DECISION_SYSTEM, m.decision_id)


def _with_mitigation(entry: Resource, m: Mitigation, settings: WritebackSettings) -> Resource:
    resource = copy.deepcopy(entry["resource"])
    system, value = _identifier(resource, settings)
    code, display = m.code
    resource.setdefault("mitigation", []).append({
        "action": {
            "coding": [{"system": codes.V3_ACT_CODE, "code": code, "display": display}],
            "text": m.text,
        },
        "date": instant(m.occurred),
        "author": ref(m.author_ref, m.author_display),
    })  # fmt: skip
    # Conditional update: the issue as first written, plus the person's mitigation.
    url = f"DetectedIssue?{token_query('identifier', system, value)}"
    return {"fullUrl": entry["fullUrl"], "resource": resource,
            "request": {"method": "PUT", "url": url}}  # fmt: skip


def _identifier(resource: Resource, settings: WritebackSettings) -> tuple[str, str]:
    for ident in resource.get("identifier") or []:
        if ident.get("system") == settings.identifier_system and ident.get("value"):
            return str(ident["system"]), str(ident["value"])
    first = (resource.get("identifier") or [{}])[0]
    return str(first.get("system")), str(first.get("value"))


def _provenance_entry(issues: Sequence[Resource], m: Mitigation) -> Resource:
    targets = [ref(i["fullUrl"], rtype="DetectedIssue") for i in issues]
    if m.patient_ref:
        targets.append(ref(m.patient_ref, "the patient", "Patient"))
    who = m.author_display or m.author_ref
    provenance = {
        "resourceType": "Provenance",
        "text": narrative(f"{m.text}: decided by {who} on an AI-assisted verification."),
        "target": targets,
        "occurredDateTime": instant(m.occurred),
        "recorded": instant(m.occurred),
        "activity": {
            "coding": [{"system": codes.V3_DATA_OPERATION, "code": "UPDATE", "display": "revise"}]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": codes.PROVENANCE_PARTICIPANT_TYPE,
                            "code": "author",
                            "display": "Author",
                        }
                    ]
                },
                "who": ref(m.author_ref, m.author_display),
            }
        ],  # fmt: skip
    }
    return {
        "fullUrl": urn(DECISION_SYSTEM, m.decision_id, "provenance"),
        "resource": provenance,
        "request": {
            "method": "POST",
            "url": "Provenance",
            # One decision per verification: its issue and its author find this Provenance
            # again on a retry (the AI Provenance of the first write has a Device as agent).
            "ifNoneExist": f"target={issues[0]['fullUrl']}&agent={m.author_ref}",
        },
    }
