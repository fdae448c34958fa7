"""The one write-back builder: a domain's resources -> one idempotent, validated transaction.

A domain (pills today, imaging next) builds its own resources, each with a stable business
identifier, and passes them with its AI Device and an `Activity` to `transaction`, which adds

- the AI Device, a conditional create on its identifier (one per Verity version + model set);
- every domain resource, a conditional create on its identifier;
- one Provenance targeting all of them, the AI Device as author (for the organisation, when
  configured), a conditional create on its tag (R4 Provenance has no identifier);

links them by `urn:uuid:` fullUrls derived from those identifiers (a retry sends the identical
Bundle and the server matches what it created before), and checks every resource against its
profile in `fhir_profiles/` before anything can be queued.
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
from service.writeback.validate import ProfileNotFound, element_of, validate

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

    key: str  # the run's stable id (e.g. the verification id): the Provenance's tag
    occurred: datetime
    sources: Sequence[Mapping[str, Any]]  # Provenance.entity items (the order, input hashes)
    summary: str  # first narrative sentence, e.g. "Finding of verification ... from ..."
    disclaimer: str


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
    dev_url = device.full_url(settings)
    prov_url = urn(settings.provenance_tag_system, activity.key)
    bundle_entries = [
        _entry(
            dev_url,
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
            prov_url,
            _json(provenance(device, entries, activity, settings)),
            token_query("_tag", settings.provenance_tag_system, activity.key),
        ),
    ]
    refuse_invalid(bundle_entries)
    main = entries[0]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": bundle_entries}
    return OutboxWrite(bundle, main.resource_type, main.system, main.value)


def provenance(
    device: AiDevice,
    targets: Sequence[Entry],
    activity: Activity,
    settings: WritebackSettings,
) -> Provenance:
    """Who (the AI Device, for the organisation) made these resources, when, and from what."""
    ai_agent: dict[str, Any] = {
        "type": {"coding": [_participant("author", "Author")]},
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
    models = ", ".join(f"{m.name} {m.version}" for m in device.models) or "no model recorded"
    prov_meta = meta(codes.PROFILE_PROVENANCE)
    # R4 Provenance has no identifier: this tag is what a retried create is matched on.
    prov_meta["tag"] = [{"system": settings.provenance_tag_system, "code": activity.key}]
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
        entity=[dict(s) for s in activity.sources],
    )


def refuse_invalid(bundle_entries: Sequence[Resource]) -> None:
    """Raise InternalError (Verity's own bug) if any resource breaks its profile; logs element
    paths only, never values (they may hold patient data)."""
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle_entries}
    for e in bundle_entries:
        resource = e["resource"]
        rtype = resource["resourceType"]
        try:
            where = sorted({element_of(p) for p in validate(resource, fullurl_types=types)})
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
