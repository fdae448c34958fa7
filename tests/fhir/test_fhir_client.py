"""The FHIR client against the real FHIR server (Medplum engine) with real SMART tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.errors import (
    FhirForbidden,
    FhirReferenceInvalid,
    FhirRejected,
    FhirResourceNotFound,
    FhirUnavailable,
)
from service.fhir.client import FhirClient, create_fhir_client

SYSTEM = "urn:verity:test:verification"


@pytest.fixture
async def fhir(fhir_server) -> AsyncIterator[FhirClient]:
    client = await create_fhir_client(fhir_server.settings_for("verity-rs384"))
    yield client
    await client.aclose()


def seed(fhir_server, resource: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(
        f"{fhir_server.base_url}/{resource['resourceType']}",
        json=resource,
        headers=fhir_server.admin_headers(),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def detected_issue(patient: str, value: str) -> dict[str, Any]:
    return {
        "resourceType": "DetectedIssue",
        "status": "preliminary",
        "identifier": [{"system": SYSTEM, "value": value}],
        "patient": {"reference": patient},
        "detail": "AI-assisted check; a pharmacist must confirm.",
    }


async def test_read_and_vread(fhir, fhir_server) -> None:
    p = seed(fhir_server, {"resourceType": "Patient", "name": [{"family": "Test"}]})
    got = await fhir.read("Patient", p["id"])
    assert got["id"] == p["id"]
    again = await fhir.vread("Patient", p["id"], p["meta"]["versionId"])
    assert again["id"] == p["id"]


async def test_read_missing_is_not_found(fhir) -> None:
    with pytest.raises(FhirResourceNotFound, match="HTTP 404"):
        await fhir.read("Patient", str(uuid.uuid4()))


async def test_scope_not_granted_is_forbidden(fhir) -> None:
    with pytest.raises(FhirForbidden):
        await fhir.read("Practitioner", "x")  # Verity's client has no Practitioner scope


async def test_search_paging_across_three_pages(fhir, fhir_server) -> None:
    p = seed(fhir_server, {"resourceType": "Patient"})
    ids = {
        seed(
            fhir_server,
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": f"Patient/{p['id']}"},
                "medicationCodeableConcept": {"text": f"drug {i}"},
            },
        )["id"]
        for i in range(7)
    }
    pages = [
        b
        async for b in fhir.search_pages(
            "MedicationRequest", {"subject": f"Patient/{p['id']}", "_count": "3"}
        )
    ]
    assert len(pages) == 3
    found = await fhir.search("MedicationRequest", {"subject": f"Patient/{p['id']}", "_count": "3"})
    assert {r["id"] for r in found} == ids and len(found) == 7


async def test_conditional_create_twice_gives_one(fhir, fhir_server) -> None:
    value = str(uuid.uuid4())
    first = await fhir.create_if_none_exist(detected_issue("Patient/p1", value), SYSTEM, value)
    second = await fhir.create_if_none_exist(detected_issue("Patient/p1", value), SYSTEM, value)
    assert first["id"] == second["id"]
    found = await fhir.search("DetectedIssue", {"identifier": f"{SYSTEM}|{value}"})
    assert len(found) == 1


async def test_transaction_with_provenance(fhir, fhir_server) -> None:
    from tests.writeback.sample import write_for

    patient = seed(fhir_server, {"resourceType": "Patient"})
    bundle = write_for(f"Patient/{patient['id']}", SYSTEM).bundle  # what production queues
    for _ in range(2):  # a retry of the whole transaction must not duplicate anything
        response = await fhir.transaction(bundle)
        assert response["type"] == "transaction-response"
    issues = await fhir.search("DetectedIssue", {"patient": f"Patient/{patient['id']}"})
    assert len(issues) == 1
    provs = await fhir.search("Provenance", {"target": f"DetectedIssue/{issues[0]['id']}"})
    assert len(provs) == 1
    assert provs[0]["target"][0]["reference"] == f"DetectedIssue/{issues[0]['id']}"


async def test_invalid_transaction_is_rejected(fhir) -> None:
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "DetectedIssue"}, "request": {"url": "x"}}],
    }
    with pytest.raises(FhirRejected, match="HTTP 400"):
        await fhir.transaction(bad)


async def test_next_link_off_origin_is_refused(fhir_server) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [],
                "link": [{"relation": "next", "url": "http://evil.example/fhir/Patient?page=2"}],
            },
        )

    client = FhirClient(
        fhir_server.settings_for("verity-rs384"), transport=httpx.MockTransport(handler)
    )
    with pytest.raises(FhirReferenceInvalid):
        await client.search("Patient")
    await client.aclose()


async def test_retries_honour_retry_after_then_succeed(fhir_server) -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503 if len(calls) == 1 else 429, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"resourceType": "Patient", "id": "a"})

    client = FhirClient(
        fhir_server.settings_for("verity-rs384"), transport=httpx.MockTransport(handler)
    )
    assert (await client.read("Patient", "a"))["id"] == "a"
    assert len(calls) == 3
    await client.aclose()


async def test_server_down_is_unavailable(fhir_server) -> None:
    from tests.servers.fixtures import free_port

    settings = fhir_server.settings_for(
        "verity-rs384", base_url=f"http://127.0.0.1:{free_port()}/fhir", max_retries=1
    )
    client = FhirClient(settings)  # no auth: the connection is refused before any token
    with pytest.raises(FhirUnavailable, match="ConnectError"):
        await client.read("Patient", "a")
    await client.aclose()
