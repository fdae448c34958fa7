"""The one write-back builder: a domain's resources -> one idempotent, validated transaction.

A domain (pills, imaging) builds its own resources, each with a stable business identifier,
and passes them with its AI Device and an `Activity` to `transaction`, which adds

- one AI-ModelCard DocumentReference per model version, a conditional create on its identifier
  (the model version), so each card is written once whatever the number of verifications;
- the AI Device (AI-Device), a conditional create on its identifier (one per Verity version +
  model set), pointing at its model cards;
- every domain resource, a conditional create on its identifier;
- one Provenance (AI-Provenance) targeting all of them and the patient, the AI Device as author
  (for the organisation, when configured), the model cards as `derivation` entities and the
  domain's inputs as `source` entities; a conditional create on `target=` its first resource
  (R4 Provenance has no identifier; see docs/fhir.md for why not a tag or a client id);

links them by `urn:uuid:` fullUrls derived from those identifiers (a retry sends the identical
Bundle and the server matches what it created before), rebases Verity's canonical URLs to the
configured `canonical_base`, and checks every resource against its profiles (Verity's in
`fhir_profiles/` and the IG's) before anything can be queued.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.provenance import Provenance
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from service.config import WritebackSettings
from service.errors import InternalError
from service.writeback import codes
from service.writeback.datatypes import instant, meta, narrative, ref, token_query, urn
from service.writeback.device import AiDevice, organization
from service.writeback.modelcards import model_card_id, model_card_reference
from service.writeback.validate import ProfileNotFound, element_of, registry_for, validate

log = logging.getLogger(__name__)

Resource = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One domain resource, created once under its stable identifier `system|value`."""

    resource: Resource
    system: str
    value: str
    confidence: float | None = None  # AIconfidence on the Provenance's reference to it

    @classmethod
    def of(
        cls,
        resource: FHIRAbstractModel | Mapping[str, Any],
        system: str,
        value: str,
        confidence: float | None = None,
    ) -> Entry:
        """An entry from a `fhir.resources` model or its JSON; it must carry the identifier."""
        data = (
            resource.model_dump(mode="json", exclude_none=True)
            if isinstance(resource, FHIRAbstractModel)
            else dict(resource)
        )
        if {"system": system, "value": value} not in data.get("identifier", []):
            raise ValueError(f"{data.get('resourceType')} does not carry identifier {system}")
        return cls(data, system, value, confidence)

    @property
    def full_url(self) -> str:
        """The entry's fullUrl: derived from its identifier, so the same on every retry."""
        return entry_url(self.system, self.value)

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])


@dataclass(frozen=True)
class Activity:
    """What the Provenance says about one run of a domain, in the domain's words."""

    occurred: datetime
    sources: Sequence[Mapping[str, Any]]  # Provenance.entity items (the order, input hashes)
    summary: str  # first narrative sentence, e.g. "Finding of verification ... from ..."
    disclaimer: str
    # The patient the resources are about: also a Provenance target, so that R4 puts the
    # Provenance in the Patient compartment (`Provenance?patient=`, patient-scoped apps).
    patient: str | None = None


@dataclass(frozen=True)
class OutboxWrite:
    """One outbox row: the transaction Bundle and the identifier of its main resource."""

    bundle: Resource
    resource_type: str
    identifier_system: str
    identifier_value: str


def entry_url(system: str, value: str) -> str:
    """The fullUrl of the resource created under `system|value`, for references between them."""
    return urn(system, value)


def transaction(
    device: AiDevice,
    entries: Sequence[Entry],
    activity: Activity,
    settings: WritebackSettings,
) -> OutboxWrite:
    """Device + the domain's resources + their Provenance as one validated transaction."""
    if not entries:
        raise ValueError("a write-back transaction needs at least one resource")
    main = entries[0]
    cards = [
        Entry.of(card, settings.model_card_identifier_system, model_card_id(m))
        for m, card in zip(device.models, device.model_cards(settings), strict=True)
    ]
    bundle_entries = [
        *(
            _entry(c.full_url, c.resource, token_query("identifier", c.system, c.value))
            for c in cards
        ),
        _entry(
            device.full_url(settings),
            _json(device.resource(settings)),
            token_query(
                "identifier", settings.device_identifier_system, device.identifier(settings)
            ),
        ),
        *(
            _entry(e.full_url, e.resource, token_query("identifier", e.system, e.value))
            for e in entries
        ),
        _entry(
            provenance_url(main),
            _json(provenance(device, entries, activity, settings)),
            # The one Provenance of a run targets its first resource, itself created once under
            # its identifier; the server resolves the urn:uuid (R4 transaction rules), and the
            # relay rewrites it to `Type/id` when the Bundle goes in parts.
            f"target={main.full_url}",
        ),
    ]
    bundle_entries = rebase(bundle_entries, codes.CANONICAL_BASE, settings.canonical_base)
    refuse_invalid(bundle_entries, settings.canonical_base)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": bundle_entries}
    return OutboxWrite(bundle, main.resource_type, main.system, main.value)


def provenance_url(main: Entry) -> str:
    """The Provenance's fullUrl: derived from its first target's, so the same on every retry."""
    return entry_url(main.system, f"{main.value}#provenance")


_CONFORMANCE = ("StructureDefinition", "CodeSystem", "ValueSet")


def rebase(node: Any, old: str, new: str) -> Any:
    """`node` with every canonical URL of a profile, code system or value set under `old`
    moved under `new` (identifier systems come from settings and are left alone)."""
    if old == new:
        return node
    if isinstance(node, str):
        for kind in _CONFORMANCE:
            if node.startswith(f"{old}/{kind}/"):
                return f"{new}{node[len(old) :]}"
        return node
    if isinstance(node, list):
        return [rebase(v, old, new) for v in node]
    if isinstance(node, dict):
        return {k: rebase(v, old, new) for k, v in node.items()}
    return node


def provenance(
    device: AiDevice,
    targets: Sequence[Entry],
    activity: Activity,
    settings: WritebackSettings,
) -> Provenance:
    """Who (the AI Device, for the organisation) made these resources, when, and from what."""
    ai_agent: dict[str, Any] = {
        "type": {"coding": [_participant("author", "Author")]},
        # Fixed exactly by AI-Provenance (slice AIagent): {system, code}, nothing more.
        "role": [{"coding": [dict(codes.AI_DEVICE_TYPE)]}],
        "who": device.reference(settings),
    }
    agents = [ai_agent]
    org = organization(settings)
    if org is not None:
        ai_agent["onBehalfOf"] = org
        agents.append({"type": {"coding": [_participant("custodian", "Custodian")]}, "who": org})
    target_refs = []
    for t in targets:
        target: dict[str, Any] = ref(t.full_url, rtype=t.resource_type)
        if t.confidence is not None:
            target["extension"] = [
                {"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": t.confidence}
            ]
        target_refs.append(target)
    if activity.patient:
        target_refs.append(ref(activity.patient, "the patient", "Patient"))
    models = ", ".join(f"{m.name} {m.version}" for m in device.models) or "no model recorded"
    prov_meta = meta(codes.PROFILE_PROVENANCE)
    prov_meta["profile"].append(codes.PROFILE_IG_AI_PROVENANCE)
    cards = [
        {"role": "derivation", "what": model_card_reference(settings, m)} for m in device.models
    ]
    return Provenance(
        meta=prov_meta,
        text=narrative(
            f"{activity.summary} Made by {settings.device_name} {device.software_version} "
            f"({models}).",
            activity.disclaimer,
        ),
        target=target_refs,
        occurredDateTime=instant(activity.occurred),
        recorded=instant(activity.occurred),
        reason=[{"coding": [dict(codes.AIAST)]}],
        activity={
            "coding": [{"system": codes.V3_DATA_OPERATION, "code": "CREATE", "display": "create"}]
        },
        agent=agents,
        entity=[*cards, *(dict(s) for s in activity.sources)],
    )


def refuse_invalid(bundle_entries: Sequence[Resource], base: str = codes.CANONICAL_BASE) -> None:
    """Raise InternalError (Verity's own bug) if any resource breaks one of its profiles; logs
    element paths only, never values (they may hold patient data)."""
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle_entries}
    registry = registry_for(base)
    for e in bundle_entries:
        resource = e["resource"]
        rtype = resource["resourceType"]
        try:
            problems = validate(resource, registry=registry, fullurl_types=types)
            where = sorted({element_of(p) for p in problems})
        except ProfileNotFound:
            where = ["meta.profile"]
        if where:
            log.error("write-back refused: %s breaks its profile at %s", rtype, ", ".join(where))
            raise InternalError(
                f"Verity built a {rtype} that breaks its profile at {', '.join(where)}, "
                "so it was not queued"
            )


def created_location(request: Resource, response: Resource, resource_type: str) -> str | None:
    """Location of the first `resource_type` entry of `request`, from the transaction-response
    (entries answer in request order)."""
    index = next(
        (
            i
            for i, e in enumerate(request.get("entry") or [])
            if (e.get("resource") or {}).get("resourceType") == resource_type
        ),
        None,
    )
    answers = response.get("entry") or []
    if index is None or index >= len(answers):
        return None
    loc = (answers[index].get("response") or {}).get("location")
    return str(loc) if loc else None


def _participant(code: str, display: str) -> dict[str, str]:
    return {"system": codes.PROVENANCE_PARTICIPANT_TYPE, "code": code, "display": display}


def _json(resource: FHIRAbstractModel) -> Resource:
    out: Resource = resource.model_dump(mode="json", exclude_none=True)
    return out


def _entry(full_url: str, resource: Resource, if_none_exist: str) -> Resource:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": if_none_exist,
        },
    }
