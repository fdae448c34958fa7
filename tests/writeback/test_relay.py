"""Outbox + relay against embedded PostgreSQL and the real FHIR server (stopped, lossy, shared)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from service.config import DbSettings, OutboxSettings
from service.fhir.client import FhirClient, create_fhir_client
from service.store import migrate
from service.store import outbox as store
from service.store.pool import create_pool
from service.writeback.relay import (
    deliver_batch,
    format_status,
    outbox_status,
    retry_row,
    run_relay,
)
from tests.writeback import sample

SYSTEM = "urn:verity:test:outbox"
FAST = OutboxSettings(
    poll_interval_s=0.05,
    batch_size=10,
    max_attempts=50,
    backoff_base_s=0.1,
    backoff_max_s=0.5,
    lease_s=30,
)


@pytest.fixture(scope="module")
async def pool(make_database) -> AsyncIterator[AsyncConnectionPool]:
    url = make_database("outbox")
    await migrate.upgrade(url)
    p = create_pool(url, DbSettings(pool_max_size=8))
    await p.open(wait=True)
    yield p
    await p.close()


@pytest.fixture(autouse=True)
async def empty_outbox(pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM outbox")


async def make_client(fhir_server, base_url: str | None = None, **kw: Any) -> FhirClient:
    settings = fhir_server.settings_for(
        "verity-rs384", base_url=base_url, max_retries=0, timeout_s=5, connect_timeout_s=1, **kw
    )
    return await create_fhir_client(settings)


async def enqueue_issues(pool, patient: str, n: int) -> list[str]:
    return await sample.enqueue_issues(pool, patient, n, SYSTEM)


def server_issues(fhir_server, patient: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{fhir_server.base_url}/DetectedIssue",
        params={"patient": patient, "_count": "500"},
        headers=fhir_server.admin_headers(),
        timeout=10,
    )
    r.raise_for_status()
    return [e["resource"] for e in r.json().get("entry") or []]


def provenance_count(fhir_server, target: str) -> int:
    r = httpx.get(
        f"{fhir_server.base_url}/Provenance",
        params={"target": target},
        headers=fhir_server.admin_headers(),
        timeout=10,
    )
    r.raise_for_status()
    return int(r.json()["total"])


async def wait_until(check: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def all_delivered(pool) -> bool:
    state = await outbox_status(pool)
    return state.counts["pending"] == 0


def assert_once_each(fhir_server, patient: str, values: list[str]) -> None:
    issues = server_issues(fhir_server, patient)
    ids = [i["value"] for r in issues for i in r["identifier"] if i["system"] == SYSTEM]
    assert sorted(ids) == sorted(values), f"{len(ids)} on server for {len(values)} queued"


async def test_enqueue_is_idempotent(pool) -> None:
    write = sample.write_for(f"Patient/{uuid.uuid4()}", SYSTEM, "same")
    assert await sample.enqueue(pool, write) is not None
    assert await sample.enqueue(pool, write) is None


async def test_server_down_then_restarted_delivers_50_once(pool, fhir_server) -> None:
    patient = f"Patient/{uuid.uuid4()}"
    fhir_server.stop()
    try:
        values = await enqueue_issues(pool, patient, 50)
        client = await make_client(fhir_server)
        stop = asyncio.Event()
        relay = asyncio.create_task(run_relay(pool, client, FAST, stop))

        async def tried() -> bool:
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT count(*) FROM outbox WHERE last_error IS NOT NULL")
                return (await cur.fetchone())[0] >= 10

        await wait_until(tried, 30)
    finally:
        fhir_server.start()
    await wait_until(lambda: all_delivered(pool), 90)
    stop.set()
    await relay
    await client.aclose()
    state = await outbox_status(pool)
    assert state.counts == {"pending": 0, "delivered": 50, "dead": 0}
    assert_once_each(fhir_server, patient, values)


async def test_lost_response_after_commit_no_duplicate(pool, fhir_server, lossy_proxy) -> None:
    patient = f"Patient/{uuid.uuid4()}"
    values = await enqueue_issues(pool, patient, 1)
    client = await make_client(fhir_server, base_url=lossy_proxy.base_url)
    lossy_proxy.drop_next(1, "POST")
    dropped = lossy_proxy.dropped
    assert await deliver_batch(pool, client, FAST) == 1  # committed upstream, response lost
    assert lossy_proxy.dropped == dropped + 1
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM outbox")
        row_id = (await cur.fetchone())[0]
        row = await store.get(conn, row_id)
    assert row is not None and row.status == "pending" and row.last_error
    assert len(server_issues(fhir_server, patient)) == 1  # the server did commit it
    await asyncio.sleep(0.6)  # past the backoff
    assert await deliver_batch(pool, client, FAST) == 1
    await client.aclose()
    async with pool.connection() as conn:
        row = await store.get(conn, row_id)
    assert row is not None and row.status == "delivered" and row.attempts == 2
    issues = server_issues(fhir_server, patient)
    assert_once_each(fhir_server, patient, values)
    assert row.fhir_location and issues[0]["id"] in row.fhir_location
    assert provenance_count(fhir_server, f"DetectedIssue/{issues[0]['id']}") == 1


async def test_two_relays_in_parallel_no_duplicate(pool, fhir_server) -> None:
    patient = f"Patient/{uuid.uuid4()}"
    values = await enqueue_issues(pool, patient, 40)
    clients = [await make_client(fhir_server) for _ in range(2)]
    stop = asyncio.Event()
    settings = OutboxSettings(**{**FAST.model_dump(), "batch_size": 3})
    relays = [asyncio.create_task(run_relay(pool, c, settings, stop)) for c in clients]
    await wait_until(lambda: all_delivered(pool), 60)
    stop.set()
    await asyncio.gather(*relays)
    for c in clients:
        await c.aclose()
    assert_once_each(fhir_server, patient, values)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT max(attempts) FROM outbox")
        assert (await cur.fetchone())[0] == 1  # no row was claimed twice


async def test_permanent_rejection_is_dead_letter_and_retryable(pool, fhir_server) -> None:
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "DetectedIssue"}, "request": {"url": "x"}}],
    }
    async with pool.connection() as conn:
        bad_id = await store.enqueue(
            conn,
            resource_type="DetectedIssue",
            identifier_system=SYSTEM,
            identifier_value="bad",
            payload=bad,
        )
        forbidden = {  # a resource type the client has no scope for
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {"resourceType": "Practitioner", "name": [{"family": "X"}]},
                    "request": {"method": "POST", "url": "Practitioner"},
                }
            ],
        }
        forb_id = await store.enqueue(
            conn,
            resource_type="Practitioner",
            identifier_system=SYSTEM,
            identifier_value="forbidden",
            payload=forbidden,
        )
    client = await make_client(fhir_server)
    await deliver_batch(pool, client, FAST)
    await client.aclose()
    state = await outbox_status(pool)
    assert state.counts["dead"] == 2
    dead = {r.id: r for r in state.dead}
    assert dead[bad_id].attempts == 1 and "VERITY-5022" in (dead[bad_id].last_error or "")
    assert "VERITY-4303" in (dead[forb_id].last_error or "")  # 403: scope not granted
    assert f"dead #{bad_id} DetectedIssue attempts=1" in format_status(state)
    assert await retry_row(pool, bad_id)
    assert (await outbox_status(pool)).counts["pending"] == 1
    assert not await retry_row(pool, 10**9)


async def test_max_attempts_then_dead(pool, fhir_server) -> None:
    from tests.servers.fixtures import free_port

    await enqueue_issues(pool, f"Patient/{uuid.uuid4()}", 1)
    client = await make_client(fhir_server, base_url=f"http://127.0.0.1:{free_port()}/fhir")
    settings = OutboxSettings(
        **{**FAST.model_dump(), "max_attempts": 2, "backoff_base_s": 0.05, "backoff_max_s": 0.05}
    )
    await deliver_batch(pool, client, settings)
    await asyncio.sleep(0.1)
    await deliver_batch(pool, client, settings)
    await client.aclose()
    state = await outbox_status(pool)
    assert state.counts["dead"] == 1 and state.dead[0].attempts == 2
    assert "VERITY-5020" in (state.dead[0].last_error or "")


async def test_unexpected_failure_keeps_the_row_and_the_relay(pool) -> None:
    """A failure nobody mapped (here: a bug in a transport) must not kill the relay or lose
    the row: it is retried later and delivered (MockTransport at the HTTP boundary)."""
    from service.config import FhirSettings

    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transport bug")
        sent = json.loads(request.content)["entry"]
        answers = [
            {"response": {"status": "201 Created", "location": f"{t}/1"}}
            for t in (e["resource"]["resourceType"] for e in sent)
        ]
        return httpx.Response(200, json={"resourceType": "Bundle",
                                         "type": "transaction-response", "entry": answers})  # fmt: skip

    client = FhirClient(
        FhirSettings(base_url="http://fhir.test/fhir", max_retries=0),
        transport=httpx.MockTransport(handler),
    )
    row_id = await sample.enqueue(pool, sample.write_for("Patient/p-1", SYSTEM, "unexpected"))
    stop = asyncio.Event()
    relay = asyncio.create_task(run_relay(pool, client, FAST, stop))
    try:
        for _ in range(100):
            async with pool.connection() as conn:
                row = await store.get(conn, row_id)
            if row is not None and row.status == "delivered":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await relay
        await client.aclose()
    assert row is not None and row.status == "delivered" and row.attempts >= 2
    assert row.fhir_location == "DetectedIssue/1"  # the main resource, not the Device
    assert calls["n"] >= 2
