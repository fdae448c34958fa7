"""Imaging jobs (table `imaging_job`, migration 0007): the only SQL for them lives here.

Claimed like the outbox: due rows are locked with `FOR UPDATE SKIP LOCKED`, given a fresh
`lease_token` and leased by pushing `next_attempt_at` forward, in one short transaction; no
connection is held while a study is fetched. A worker that dies leaves its job `running` with
a lease that runs out, and the next claim takes it. Progress and the finish are fenced on the
lease token, so a worker whose lease was taken over can neither report nor record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from service.errors import IdempotencyConflict, UnknownVerification
from service.store.filters import newest_first

_COLUMNS = """id::text, created_at, updated_at, state, study_ref, patient_ref, order_ref,
              caller_subject, caller_client_id, caller_scopes, attempts, lease_token::text,
              progress, outcome, findings, error"""


class LeaseLost(Exception):
    """Another worker claimed this job after our lease ran out: stop, record nothing."""


@dataclass(frozen=True)
class JobRow:
    id: str
    created_at: datetime
    updated_at: datetime
    state: str
    study_ref: str
    patient_ref: str | None
    order_ref: str | None
    caller_subject: str | None
    caller_client_id: str | None
    caller_scopes: list[str]
    attempts: int
    lease_token: str | None
    progress: dict[str, Any]
    outcome: str | None
    findings: list[str]
    error: dict[str, Any] | None


@dataclass(frozen=True)
class NewJob:
    id: str
    study_ref: str
    request_sha256: str
    idempotency_key: str | None = None
    caller_subject: str | None = None
    caller_client_id: str | None = None
    caller_scopes: tuple[str, ...] = ()


async def submit(conn: psycopg.AsyncConnection, job: NewJob) -> tuple[JobRow, bool]:
    """Queue a job; with an idempotency key already used by this caller, the earlier job (and
    False), or IdempotencyConflict when that key was used for another request."""
    cur = await conn.execute(
        """INSERT INTO imaging_job (id, study_ref, request_sha256, idempotency_key,
               caller_subject, caller_client_id, caller_scopes)
           VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
        (job.id, job.study_ref, job.request_sha256, job.idempotency_key, job.caller_subject,
         job.caller_client_id, list(job.caller_scopes)),
    )  # fmt: skip
    if cur.rowcount == 1:
        return await get(conn, job.id), True
    async with conn.cursor(row_factory=dict_row) as c:
        await c.execute(
            f"""SELECT {_COLUMNS}, request_sha256 FROM imaging_job
                WHERE coalesce(caller_client_id, '') = %s AND idempotency_key = %s""".encode(),
            (job.caller_client_id or "", job.idempotency_key or ""),
        )
        row = await c.fetchone()
    if row is None:
        raise UnknownVerification("the job was neither queued nor found")
    if row.pop("request_sha256") != job.request_sha256:
        raise IdempotencyConflict("this Idempotency-Key was used for a different request")
    return JobRow(**row), False


async def get(conn: psycopg.AsyncConnection, job_id: str) -> JobRow:
    async with conn.cursor(row_factory=dict_row) as cur:
        try:
            await cur.execute(f"SELECT {_COLUMNS} FROM imaging_job WHERE id = %s", (job_id,))
        except psycopg.errors.InvalidTextRepresentation:
            raise UnknownVerification(f"no imaging verification {job_id!r}") from None
        row = await cur.fetchone()
    if row is None:
        raise UnknownVerification(f"no imaging verification {job_id!r}")
    return JobRow(**row)


async def claim(conn: psycopg.AsyncConnection, *, limit: int, lease_s: float) -> list[JobRow]:
    """Take due jobs (queued, or running with an expired lease) other workers are not holding:
    count the attempt, give each a new lease token, commit."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""WITH due AS (
                    SELECT id FROM imaging_job
                    WHERE state IN ('queued', 'running') AND next_attempt_at <= now()
                    ORDER BY next_attempt_at, id
                    LIMIT %s
                    FOR UPDATE SKIP LOCKED)
                UPDATE imaging_job j
                   SET state = 'running', attempts = j.attempts + 1,
                       lease_token = gen_random_uuid(), updated_at = now(),
                       next_attempt_at = now() + make_interval(secs => %s)
                  FROM due WHERE j.id = due.id
                RETURNING {_COLUMNS.replace("id::text", "j.id::text", 1)}""",
            (limit, lease_s),
        )
        return [JobRow(**r) for r in await cur.fetchall()]


async def report(
    conn: psycopg.AsyncConnection,
    job: JobRow,
    *,
    lease_s: float,
    progress: dict[str, Any] | None = None,
    patient_ref: str | None = None,
    order_ref: str | None = None,
) -> None:
    """Progress from the lease holder; renews the lease. LeaseLost if it is no longer ours."""
    cur = await conn.execute(
        """UPDATE imaging_job
              SET progress = coalesce(%s, progress), patient_ref = coalesce(%s, patient_ref),
                  order_ref = coalesce(%s, order_ref), updated_at = now(),
                  next_attempt_at = now() + make_interval(secs => %s)
            WHERE id = %s AND lease_token = %s AND state = 'running'""",
        (Jsonb(progress) if progress is not None else None, patient_ref, order_ref, lease_s,
         job.id, job.lease_token),
    )  # fmt: skip
    if cur.rowcount != 1:
        raise LeaseLost(job.id)


async def finish(
    conn: psycopg.AsyncConnection,
    job: JobRow,
    *,
    outcome: str,
    findings: list[str],
    progress: dict[str, Any],
) -> None:
    """Mark done, in the caller's transaction that records the verification (LeaseLost: roll
    it back, the current lease holder records it)."""
    cur = await conn.execute(
        """UPDATE imaging_job
              SET state = 'done', outcome = %s, findings = %s, progress = %s, error = NULL,
                  lease_token = NULL, updated_at = now()
            WHERE id = %s AND lease_token = %s AND state = 'running'""",
        (outcome, findings, Jsonb(progress), job.id, job.lease_token),
    )
    if cur.rowcount != 1:
        raise LeaseLost(job.id)


async def fail(
    conn: psycopg.AsyncConnection, job: JobRow, error: dict[str, Any], *, retry_in_s: float | None
) -> bool:
    """A failed attempt: queued again after `retry_in_s`, or failed for good (None). False if
    the lease was no longer ours (nothing changed)."""
    state = "queued" if retry_in_s is not None else "failed"
    cur = await conn.execute(
        """UPDATE imaging_job
              SET state = %s, error = %s, lease_token = NULL, updated_at = now(),
                  next_attempt_at = now() + make_interval(secs => %s)
            WHERE id = %s AND lease_token = %s AND state = 'running'""",
        (state, Jsonb(error), retry_in_s or 0.0, job.id, job.lease_token),
    )
    return cur.rowcount == 1


async def search(
    conn: psycopg.AsyncConnection,
    *,
    patient_ref: str | None = None,
    study_ref: str | None = None,
    order_ref: str | None = None,
    outcome: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: datetime | None = None,
    limit: int = 50,
) -> list[JobRow]:
    """Newest first, for auditors; `before` is the keyset cursor (created_at of the last row)."""
    filters = {"patient_ref": patient_ref, "study_ref": study_ref, "order_ref": order_ref,
               "outcome": outcome, "state": state}  # fmt: skip
    where, args = newest_first(filters, since=since, until=until, before=before)
    query = (
        f"SELECT {_COLUMNS} FROM imaging_job WHERE {where} ORDER BY created_at DESC, id LIMIT %s"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), (*args, limit))
        return [JobRow(**r) for r in await cur.fetchall()]


async def counts(conn: psycopg.AsyncConnection) -> dict[str, int]:
    """Jobs per state (health and `verity` status output)."""
    cur = await conn.execute("SELECT state, count(*) FROM imaging_job GROUP BY state")
    found = {"queued": 0, "running": 0, "done": 0, "failed": 0}
    found.update({str(s): int(n) for s, n in await cur.fetchall()})
    return found


def error_fields(code: str, title: str, detail: str, retryable: bool) -> dict[str, Any]:
    """The problem fields kept on a job (JSON-safe, bounded)."""
    return {"code": code, "title": title, "detail": detail[:500], "retryable": retryable}
