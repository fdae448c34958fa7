"""Idempotent transaction Bundles: a resource and its Provenance, safe to send twice.

The main resource is a conditional create on its stable business identifier. R4 Provenance has
no identifier, so it is a conditional create on its target: the server resolves the target's
placeholder to the already existing resource on a retry and finds the earlier Provenance.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from httpx import QueryParams

Resource = dict[str, Any]


def identifier_query(system: str, value: str) -> str:
    """`identifier=system|value`, URL-encoded for If-None-Exist / ifNoneExist."""
    return str(QueryParams({"identifier": f"{system}|{value}"}))


def transaction_bundle(
    resource: Resource,
    provenance: Resource | None,
    identifier_system: str,
    identifier_value: str,
) -> Resource:
    """A transaction creating `resource` once (by identifier) and its Provenance once."""
    main = copy.deepcopy(resource)
    rtype = main["resourceType"]
    ids = main.setdefault("identifier", [])
    if not any(
        i.get("system") == identifier_system and i.get("value") == identifier_value for i in ids
    ):
        ids.append({"system": identifier_system, "value": identifier_value})
    # Stable placeholder: the same outbox row always produces the same Bundle.
    full_url = (
        f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{identifier_system}|{identifier_value}')}"
    )
    entries: list[Resource] = [
        {
            "fullUrl": full_url,
            "resource": main,
            "request": {
                "method": "POST",
                "url": rtype,
                "ifNoneExist": identifier_query(identifier_system, identifier_value),
            },
        }
    ]
    if provenance is not None:
        prov = copy.deepcopy(provenance)
        prov["target"] = [{"reference": full_url}]
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, full_url + '#provenance')}",
                "resource": prov,
                "request": {
                    "method": "POST",
                    "url": "Provenance",
                    "ifNoneExist": str(QueryParams({"target": full_url})),
                },
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def created_location(response: Resource) -> str | None:
    """Location of the main resource from a transaction-response Bundle."""
    entries = response.get("entry") or []
    if not entries:
        return None
    loc = (entries[0].get("response") or {}).get("location")
    return str(loc) if loc else None
