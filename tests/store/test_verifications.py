import uuid
from datetime import UTC, datetime, timedelta

import pytest

from service.errors import IdempotencyConflict, UnknownVerification
from service.store import verifications as store
from service.store.verifications import NewVerification


def _new(**kw):
    base = {
        "id": str(uuid.uuid4()),
        "kind": "pill",
        "request_sha256": "h1",
        "order_ref": "MedicationRequest/1",
        "verdict": "MATCH",
        "result": {"verdict": "MATCH"},
        "patient_ref": "Patient/9",
        "caller_client_id": "ehr",
        "idempotency_key": None,
    }
    base.update(kw)
    return NewVerification(**base)


async def test_insert_get_and_search(conn):
    a = _new(verdict="MISMATCH", order_ref="MedicationRequest/2")
    b = _new()
    assert await store.insert(conn, a) and await store.insert(conn, b)
    got = await store.get(conn, a.id)
    assert got.verdict == "MISMATCH" and got.result == {"verdict": "MATCH"}
    assert {r.id for r in await store.search(conn, patient_ref="Patient/9")} >= {a.id, b.id}
    assert [r.id for r in await store.search(conn, order_ref="MedicationRequest/2")] == [a.id]
    assert a.id not in {r.id for r in await store.search(conn, verdict="MATCH")}
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await store.search(conn, since=future) == []


async def test_unknown_and_malformed_ids(conn):
    with pytest.raises(UnknownVerification):
        await store.get(conn, str(uuid.uuid4()))
    with pytest.raises(UnknownVerification):
        await store.get(conn, "not-a-uuid")


async def test_idempotency_key_is_per_client_and_checks_the_request(conn):
    first = _new(idempotency_key="k1")
    assert await store.insert(conn, first)
    assert not await store.insert(conn, _new(idempotency_key="k1"))  # same client + key: no row
    assert await store.insert(conn, _new(idempotency_key="k1", caller_client_id="other"))
    found = await store.find_by_idempotency_key(conn, "ehr", "k1", "h1")
    assert found is not None and found.id == first.id
    assert await store.find_by_idempotency_key(conn, "ehr", "k2", "h1") is None
    with pytest.raises(IdempotencyConflict):
        await store.find_by_idempotency_key(conn, "ehr", "k1", "different-request")
