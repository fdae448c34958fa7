"""Provenance idempotency on the real FHIR server, the two ways R4 allows without a tag: the
builder's conditional create on `target=` (kept) and a PUT to a client-assigned id derived from
the verification id (measured, not used: every re-delivery writes a new version)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx

from service.writeback.bundle import OutboxWrite
from tests.writeback import sample

SYSTEM = "urn:verity:test:provenance-idempotency"
DELIVERIES = 3


def put_variant(write: OutboxWrite) -> tuple[dict[str, Any], str]:
    """The same Bundle with the Provenance as `PUT Provenance/<uuid5(verification id)>`."""
    bundle = copy.deepcopy(write.bundle)
    prov = bundle["entry"][-1]
    pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{write.identifier_system}|{write.identifier_value}"))
    prov["resource"]["id"] = pid
    prov["request"] = {"method": "PUT", "url": f"Provenance/{pid}"}
    return bundle, pid


def post(fhir_server, bundle: dict[str, Any]) -> list[str]:
    r = httpx.post(
        fhir_server.base_url,
        json=bundle,
        headers={**fhir_server.admin_headers(), "Content-Type": "application/fhir+json"},
        timeout=30,
    )
    r.raise_for_status()
    return [e["response"]["status"][:3] for e in r.json()["entry"]]


def get(fhir_server, path: str, **params: str) -> dict[str, Any]:
    r = httpx.get(
        f"{fhir_server.base_url}/{path}",
        params=params,
        headers=fhir_server.admin_headers(),
        timeout=30,
    )
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


def provenances_of(fhir_server, patient: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in get(fhir_server, "Provenance", patient=patient).get("entry", [])]


def history_length(fhir_server, prov_id: str) -> int:
    return len(get(fhir_server, f"Provenance/{prov_id}/_history").get("entry", []))


def test_conditional_create_on_target_writes_the_provenance_once_and_one_version(fhir_server):
    patient = f"Patient/{uuid.uuid4()}"
    write = sample.write_for(patient, SYSTEM)
    statuses = [post(fhir_server, write.bundle) for _ in range(DELIVERIES)]
    assert statuses[0][-2:] == ["201", "201"]  # the DetectedIssue and its Provenance created
    for again in statuses[1:]:
        assert again == ["200"] * len(write.bundle["entry"])  # all matched, nothing written
    (prov,) = provenances_of(fhir_server, patient)
    assert history_length(fhir_server, prov["id"]) == 1
    other = sample.write_for(patient, SYSTEM)  # another verification: its own Provenance
    assert post(fhir_server, other.bundle)[-1] == "201"
    assert len(provenances_of(fhir_server, patient)) == 2


def test_put_to_a_client_id_is_one_resource_but_a_new_version_per_delivery(fhir_server):
    """Why the builder does not PUT: this server accepts client-assigned ids, but each
    re-delivery of the identical Provenance is a new version (history grows)."""
    patient = f"Patient/{uuid.uuid4()}"
    bundle, pid = put_variant(sample.write_for(patient, SYSTEM))
    statuses = [post(fhir_server, bundle)[-1] for _ in range(DELIVERIES)]
    assert statuses == ["200"] * DELIVERIES  # Medplum answers 200 to a PUT, even one creating
    (prov,) = provenances_of(fhir_server, patient)
    assert prov["id"] == pid
    assert history_length(fhir_server, pid) == DELIVERIES
