"""The imaging job queue on the real PostgreSQL: idempotent submission, SKIP LOCKED claims by
concurrent workers, leases that run out, and fencing on the lease token."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from service.errors import IdempotencyConflict, UnknownVerification
from service.store import jobs
from service.store.jobs import LeaseLost, NewJob


def new_job(**kw: object) -> NewJob:
    args: dict[str, object] = {
        "id": str(uuid.uuid4()), "study_ref": f"ImagingStudy/{uuid.uuid4().hex[:8]}",
        "request_sha256": "a" * 64,
    }  # fmt: skip
    args.update(kw)
    return NewJob(**args)  # type: ignore[arg-type]


@pytest.fixture
async def queue(make_database: object) -> str:
    """A database of its own: claims see every due job, so tests must not share a queue."""
    from service.store import migrate

    url: str = make_database("jobs")  # type: ignore[operator]
    await migrate.upgrade(url)
    return url


async def connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def test_an_idempotency_key_returns_the_same_job_and_refuses_another_request(
    conn: psycopg.AsyncConnection,
) -> None:
    key = uuid.uuid4().hex
    first, created = await jobs.submit(conn, new_job(idempotency_key=key, caller_client_id="c"))
    again, created_again = await jobs.submit(
        conn, new_job(idempotency_key=key, caller_client_id="c")
    )
    assert created and not created_again
    assert again.id == first.id and again.state == "queued"
    with pytest.raises(IdempotencyConflict):
        await jobs.submit(
            conn, new_job(idempotency_key=key, caller_client_id="c", request_sha256="b" * 64)
        )
    other, created_other = await jobs.submit(
        conn, new_job(idempotency_key=key, caller_client_id="another client")
    )
    assert created_other and other.id != first.id


async def test_unknown_or_malformed_job_ids_are_unknown(conn: psycopg.AsyncConnection) -> None:
    with pytest.raises(UnknownVerification):
        await jobs.get(conn, str(uuid.uuid4()))
    with pytest.raises(UnknownVerification):
        await jobs.get(conn, "not-a-uuid")


async def test_two_workers_never_claim_the_same_job(queue: str) -> None:
    async with await connect(queue) as c:
        for _ in range(6):
            await jobs.submit(c, new_job())
    a, b = await connect(queue), await connect(queue)
    try:
        got_a, got_b = await asyncio.gather(
            jobs.claim(a, limit=6, lease_s=60), jobs.claim(b, limit=6, lease_s=60)
        )
    finally:
        await a.close()
        await b.close()
    ids_a, ids_b = {j.id for j in got_a}, {j.id for j in got_b}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 6
    assert all(j.state == "running" and j.attempts == 1 for j in got_a + got_b)


async def test_a_crashed_workers_job_is_taken_over_after_its_lease_and_fenced(queue: str) -> None:
    async with await connect(queue) as c:
        job, _ = await jobs.submit(c, new_job())
        (crashed,) = await jobs.claim(c, limit=1, lease_s=0.3)
        assert await jobs.claim(c, limit=1, lease_s=60) == []  # leased: nobody else takes it
        await asyncio.sleep(0.5)
        (taken,) = await jobs.claim(c, limit=1, lease_s=60)
        assert taken.id == job.id and taken.attempts == 2
        assert taken.lease_token != crashed.lease_token
        # The first worker wakes up: it can neither report nor finish nor fail the job.
        with pytest.raises(LeaseLost):
            await jobs.report(c, crashed, lease_s=60, progress={"instances_found": 3})
        with pytest.raises(LeaseLost):
            await jobs.finish(c, crashed, outcome="PASSED", findings=[], progress={})
        assert not await jobs.fail(c, crashed, {"code": "x"}, retry_in_s=None)
        await jobs.report(c, taken, lease_s=60, progress={"instances_found": 3})
        await jobs.finish(c, taken, outcome="FAILED", findings=["SLICE_GAP"], progress={"a": 1})
        done = await jobs.get(c, job.id)
    assert done.state == "done" and done.outcome == "FAILED" and done.findings == ["SLICE_GAP"]
    assert done.lease_token is None


async def test_a_retryable_failure_queues_again_and_a_final_one_fails(queue: str) -> None:
    async with await connect(queue) as c:
        job, _ = await jobs.submit(c, new_job())
        (claimed,) = await jobs.claim(c, limit=1, lease_s=60)
        error = jobs.error_fields("VERITY-5023", "DICOMweb server unavailable", "down", True)
        assert await jobs.fail(c, claimed, error, retry_in_s=0.2)
        queued = await jobs.get(c, job.id)
        assert queued.state == "queued" and queued.error == error
        assert await jobs.claim(c, limit=1, lease_s=60) == []  # not due yet
        await asyncio.sleep(0.3)
        (again,) = await jobs.claim(c, limit=1, lease_s=60)
        assert again.attempts == 2
        assert await jobs.fail(c, again, error, retry_in_s=None)
        assert (await jobs.get(c, job.id)).state == "failed"
        assert await jobs.claim(c, limit=1, lease_s=60) == []
        assert (await jobs.counts(c))["failed"] == 1


async def test_the_auditors_list_filters_and_pages(queue: str) -> None:
    async with await connect(queue) as c:
        for i in range(3):
            job, _ = await jobs.submit(c, new_job(study_ref=f"ImagingStudy/s{i}"))
            (claimed,) = await jobs.claim(c, limit=1, lease_s=60)
            await jobs.report(c, claimed, lease_s=60, patient_ref="Patient/p", order_ref="SR/1")
        rows = await jobs.search(c, patient_ref="Patient/p", limit=2)
        assert len(rows) == 2
        rest = await jobs.search(c, patient_ref="Patient/p", before=rows[-1].created_at)
        assert len(rest) == 1
        assert [r.study_ref for r in await jobs.search(c, study_ref="ImagingStudy/s1")] == [
            "ImagingStudy/s1"
        ]
        assert await jobs.search(c, state="done") == []
