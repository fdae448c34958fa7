"""A 21-entry write-back through the relay, in parts, against embedded PostgreSQL and the real
FHIR server (Medplum's engine, which refuses it whole): once, resolved, despite retries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from service.config import DbSettings, FhirSettings, OutboxSettings, WritebackSettings
from service.errors import FhirRejected
from service.fhir.client import FhirClient, create_fhir_client
from service.store import migrate
from service.store import outbox as store
from service.store.pool import create_pool
from service.writeback.relay import deliver_batch, post_transaction
from tests.writeback import sample
from tests.writeback.large import large_write, observation_values

SYSTEM = "urn:verity:test:parts-relay"
SID = "https://fhir.hospital.example/verity/sid"  # the default identifier systems' base
FAST = OutboxSettings(max_attempts=50, backoff_base_s=0.1, backoff_max_s=0.5, lease_s=30)
CAP = WritebackSettings().max_transaction_entries


@pytest.fixture(scope="module")
async def pool(make_database) -> AsyncIterator[AsyncConnectionPool]:
    url = make_database("parts")
    await migrate.upgrade(url)
    p = create_pool(url, DbSettings(pool_max_size=4))
    await p.open(wait=True)
    yield p
    await p.close()


@pytest.fixture(autouse=True)
async def empty_outbox(pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM outbox")


async def make_client(fhir_server, base_url: str | None = None) -> FhirClient:
    settings = fhir_server.settings_for(
        "verity-rs384", base_url=base_url, max_retries=0, timeout_s=10, connect_timeout_s=1
    )
    return await create_fhir_client(settings)


def search(fhir_server, rtype: str, **params: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{fhir_server.base_url}/{rtype}",
        params={**params, "_count": "500"},
        headers=fhir_server.admin_headers(),
        timeout=10,
    )
    r.raise_for_status()
    return [e["resource"] for e in r.json().get("entry") or []]


def assert_written_once(fhir_server, patient: str, key: str) -> str:
    """Every resource of the write-back exactly once, linked by server ids; the report's id."""
    observations = search(fhir_server, "Observation", subject=patient)
    values = sorted(i["value"] for o in observations for i in o["identifier"])
    assert values == sorted(observation_values(key))
    reports = search(fhir_server, "DiagnosticReport", subject=patient)
    assert len(reports) == 1
    report = reports[0]
    obs_refs = {f"Observation/{o['id']}" for o in observations}
    assert {r["reference"] for r in report["result"]} == obs_refs  # urns resolved to server ids
    devices = search(fhir_server, "Device", identifier=f"{SID}/device|{device_id(key)}")
    assert len(devices) == 1
    device_ref = f"Device/{devices[0]['id']}"
    assert {o["device"]["reference"] for o in observations} == {device_ref}
    cards = search(
        fhir_server, "DocumentReference", identifier=f"{SID}/model-card|split-test@{key}"
    )
    assert len(cards) == 1  # the model version of this test's Device, once
    card_ref = f"DocumentReference/{cards[0]['id']}"
    assert devices[0]["extension"][-1]["valueReference"]["reference"] == card_ref
    provenances = search(fhir_server, "Provenance", target=f"DiagnosticReport/{report['id']}")
    assert len(provenances) == 1
    targets = {t["reference"] for t in provenances[0]["target"]}
    assert targets == obs_refs | {f"DiagnosticReport/{report['id']}", patient}
    assert provenances[0]["agent"][0]["who"]["reference"] == device_ref
    assert provenances[0]["entity"][0] == {
        "role": "derivation",
        "what": {
            "reference": card_ref,
            "type": "DocumentReference",
            "display": f"model card of split-test {key}",
        },
    }
    return str(report["id"])


def device_id(key: str) -> str:
    entries = large_write("Patient/x", SYSTEM, key=key, checks=1).bundle["entry"]
    device = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Device")
    return str(device["identifier"][0]["value"])


async def row_of(pool) -> store.OutboxRow:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM outbox")
        row = await store.get(conn, (await cur.fetchone())[0])
    assert row is not None
    return row


async def test_the_server_refuses_the_whole_bundle(fhir_server) -> None:
    """What makes splitting necessary: Medplum's cap on a transaction of conditional creates."""
    write = large_write(f"Patient/{uuid.uuid4()}", SYSTEM)
    client = await make_client(fhir_server)
    try:
        with pytest.raises(FhirRejected, match="too many entries"):
            await client.transaction(write.bundle)
        assert CAP < len(write.bundle["entry"])
        response = await post_transaction(client, write.bundle, CAP)  # the same, in parts
        assert [e["response"]["status"][:3] for e in response["entry"]] == ["201"] * len(
            write.bundle["entry"]
        )
    finally:
        await client.aclose()


async def test_large_write_delivered_in_parts_once_then_redelivered(pool, fhir_server) -> None:
    patient, key = f"Patient/{uuid.uuid4()}", str(uuid.uuid4())
    row_id = await sample.enqueue(pool, large_write(patient, SYSTEM, key=key))
    client = await make_client(fhir_server)
    try:
        assert await deliver_batch(pool, client, FAST, CAP) == 1
        row = await row_of(pool)
        assert row.id == row_id and row.status == "delivered" and row.attempts == 1
        report_id = assert_written_once(fhir_server, patient, key)
        assert row.fhir_location and reference_id(row.fhir_location) == report_id
        # the relay delivers the same row again (e.g. it died before marking it delivered)
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = now() WHERE id = %s",
                (row_id,),
            )
        assert await deliver_batch(pool, client, FAST, CAP) == 1
        again = await row_of(pool)
        assert again.status == "delivered" and again.fhir_location == row.fhir_location
        assert assert_written_once(fhir_server, patient, key) == report_id
        # every part matched what the first delivery created: 200, none 201
        response = await post_transaction(client, again.payload, CAP)
        assert {e["response"]["status"][:3] for e in response["entry"]} == {"200"}
    finally:
        await client.aclose()


async def test_lost_response_of_the_second_part_no_duplicate(
    pool, fhir_server, lossy_proxy
) -> None:
    patient, key = f"Patient/{uuid.uuid4()}", str(uuid.uuid4())
    await sample.enqueue(pool, large_write(patient, SYSTEM, key=key))
    client = await make_client(fhir_server, base_url=lossy_proxy.base_url)
    try:
        dropped = lossy_proxy.dropped
        lossy_proxy.drop_next(1, "POST", after=1)  # part 1 answered, part 2 committed, lost
        assert await deliver_batch(pool, client, FAST, CAP) == 1
        assert lossy_proxy.dropped == dropped + 1
        row = await row_of(pool)
        assert row.status == "pending" and row.last_error and "VERITY-5020" in row.last_error
        # parts 1 and 2 are on the server (model card + Device + 14 Observations), part 3 not
        assert len(search(fhir_server, "Observation", subject=patient)) == 2 * CAP - 2
        assert search(fhir_server, "DiagnosticReport", subject=patient) == []
        await asyncio.sleep(0.6)  # past the backoff
        assert await deliver_batch(pool, client, FAST, CAP) == 1
        row = await row_of(pool)
        assert row.status == "delivered" and row.attempts == 2
        report_id = assert_written_once(fhir_server, patient, key)
        assert row.fhir_location and reference_id(row.fhir_location) == report_id
    finally:
        await client.aclose()


async def test_a_planning_bug_is_dead_lettered_without_a_request(pool) -> None:
    """A Bundle whose entries reference each other can never be delivered: dead at once."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    write = large_write(f"Patient/{uuid.uuid4()}", SYSTEM)
    entries = write.bundle["entry"]
    entries[0]["resource"]["owner"] = {"reference": entries[-1]["fullUrl"]}  # a cycle
    await sample.enqueue(pool, write)
    client = FhirClient(
        FhirSettings(base_url="http://fhir.test/fhir", max_retries=0),
        transport=httpx.MockTransport(handler),
    )
    try:
        assert await deliver_batch(pool, client, FAST, CAP) == 1
    finally:
        await client.aclose()
    row = await row_of(pool)
    assert row.status == "dead" and row.attempts == 1 and "VERITY-5000" in (row.last_error or "")
    assert calls == []


def reference_id(location: str) -> str:
    path = location.split("/_history", 1)[0].split("/")
    assert path[-2] == "DiagnosticReport"
    return path[-1]
