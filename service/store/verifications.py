"""Verification audit rows, idempotency lookups, and the audit reviewers' filtered list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from service.errors import IdempotencyConflict, UnknownVerification
from service.store.filters import newest_first


@dataclass(frozen=True)
class VerificationRow:
    id: str
    kind: str
    created_at: datetime
    verdict: str
    order_ref: str
    patient_ref: str | None
    related_ref: str | None
    result: dict[str, Any]
    caller_subject: str | None
    caller_client_id: str | None


@dataclass(frozen=True)
class NewVerification:
    id: str
    kind: str
    request_sha256: str
    order_ref: str
    verdict: str
    result: dict[str, Any]
    patient_ref: str | None = None
    related_ref: str | None = None
    idempotency_key: str | None = None
    caller_subject: str | None = None
    caller_client_id: str | None = None
    caller_scopes: tuple[str, ...] = ()
    input_sha256: tuple[str, ...] = ()
    model_versions: dict[str, str] | None = None


_FIELDS = """id::text, kind, created_at, verdict, order_ref, patient_ref, related_ref, result,
              caller_subject, caller_client_id"""
_SELECT = f"SELECT {_FIELDS} FROM verification"


async def insert(conn: psycopg.AsyncConnection, v: NewVerification) -> bool:
    """Insert the audit row; False when the idempotency key was already used (no insert)."""
    cur = await conn.execute(
        """INSERT INTO verification (id, kind, idempotency_key, request_sha256, caller_subject,
               caller_client_id, caller_scopes, patient_ref, order_ref, related_ref, verdict,
               result, input_sha256, model_versions)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT DO NOTHING""",
        (
            v.id,
            v.kind,
            v.idempotency_key,
            v.request_sha256,
            v.caller_subject,
            v.caller_client_id,
            list(v.caller_scopes),
            v.patient_ref,
            v.order_ref,
            v.related_ref,
            v.verdict,
            json.dumps(v.result),
            list(v.input_sha256),
            json.dumps(v.model_versions or {}),
        ),  # fmt: skip
    )
    return cur.rowcount == 1


async def find_by_idempotency_key(
    conn: psycopg.AsyncConnection, client_id: str | None, key: str, request_sha256: str
) -> VerificationRow | None:
    """The earlier verification for this caller and key; conflict if the request differs."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {_FIELDS}, request_sha256 FROM verification
                WHERE coalesce(caller_client_id, '') = %s AND idempotency_key = %s""".encode(),
            (client_id or "", key),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    if row.pop("request_sha256") != request_sha256:
        raise IdempotencyConflict(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    return VerificationRow(**row)


async def get(conn: psycopg.AsyncConnection, verification_id: str) -> VerificationRow:
    async with conn.cursor(row_factory=dict_row) as cur:
        try:
            await cur.execute(_SELECT.encode() + b" WHERE id = %s", (verification_id,))
        except psycopg.errors.InvalidTextRepresentation:
            raise UnknownVerification(f"no verification {verification_id!r}") from None
        row = await cur.fetchone()
    if row is None:
        raise UnknownVerification(f"no verification {verification_id!r}")
    return VerificationRow(**row)


async def search(
    conn: psycopg.AsyncConnection,
    *,
    kind: str | None = None,
    patient_ref: str | None = None,
    order_ref: str | None = None,
    verdict: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    before: datetime | None = None,
) -> list[VerificationRow]:
    """Newest first; `before` is the keyset cursor (created_at of the last row seen)."""
    filters = {"kind": kind, "patient_ref": patient_ref, "order_ref": order_ref,
               "verdict": verdict}  # fmt: skip
    where, args = newest_first(filters, since=since, until=until, before=before)
    query = f"{_SELECT} WHERE {where} ORDER BY created_at DESC, id LIMIT %s"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), (*args, limit))
        return [VerificationRow(**r) for r in await cur.fetchall()]


# --- the audit view (service/workflows/audit.py): verifications with decision and write state


@dataclass(frozen=True)
class AuditFilter:
    """What an auditor searches for; None matches anything. `order_ref` matches the order or
    study checked, or the order an imaging study was based on."""

    kind: str | None = None
    patient_ref: str | None = None
    order_ref: str | None = None
    verdict: str | None = None
    finding: str | None = None
    decided_by: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditRow:
    """One line of the audit list: the verification, its decision and its own FHIR write."""

    id: str
    kind: str
    created_at: datetime
    verdict: str
    order_ref: str
    patient_ref: str | None
    findings: list[str]
    needs_attention: bool
    decided_by: str | None
    decision: str | None
    decided_at: datetime | None
    fhir_status: str


# needs_attention is in every result JSON; the verdict is the fallback for rows without it.
_NEEDS = """coalesce((v.result->>'needs_attention')::boolean,
                     v.verdict NOT IN ('MATCH', 'PASSED'))"""
_FROM = """FROM verification v
           LEFT JOIN verification_decision d ON d.verification_id = v.id"""


def _audit_where(f: AuditFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of an audit filter: fixed SQL fragments, values as parameters."""
    clauses: list[tuple[str, Any]] = [
        ("v.kind = %s", f.kind),
        ("v.patient_ref = %s", f.patient_ref),
        ("v.verdict = %s", f.verdict),
        ("v.result->'findings' ? %s", f.finding),
        ("d.author_ref = %s", f.decided_by),
        ("v.created_at >= %s", f.since),
        ("v.created_at < %s", f.until),
    ]
    where = ["TRUE"] + [sql for sql, value in clauses if value is not None]
    args = [value for _, value in clauses if value is not None]
    if f.order_ref is not None:
        where.append("(v.order_ref = %s OR v.result->>'order_ref' = %s)")
        args += [f.order_ref, f.order_ref]
    return " AND ".join(where), args


async def audit_page(
    conn: psycopg.AsyncConnection,
    f: AuditFilter,
    *,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[AuditRow]:
    """Newest first; `after` is the keyset cursor (created_at, id) of the last row seen, so
    rows created in the same instant are neither skipped nor repeated."""
    where, args = _audit_where(f)
    if after is not None:
        where += " AND (v.created_at, v.id) < (%s, %s::uuid)"
        args += [after[0], after[1]]
    query = f"""SELECT v.id::text, v.kind, v.created_at, v.verdict, v.order_ref, v.patient_ref,
                  coalesce(v.result->'findings', '[]'::jsonb) AS findings,
                  {_NEEDS} AS needs_attention,
                  d.author_ref AS decided_by, d.action AS decision, d.created_at AS decided_at,
                  coalesce(o.status, v.result->'fhir'->>'status', 'not_written') AS fhir_status
                {_FROM}
                LEFT JOIN LATERAL (
                    SELECT status FROM outbox o
                    WHERE o.verification_id = v.id AND o.id IS DISTINCT FROM d.outbox_id
                    ORDER BY o.id LIMIT 1) o ON TRUE
                WHERE {where}
                ORDER BY v.created_at DESC, v.id DESC LIMIT %s"""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), (*args, limit))
        return [AuditRow(**r) for r in await cur.fetchall()]


@dataclass(frozen=True)
class DayCount:
    """One day (UTC) of the audit chart."""

    day: date
    clean: int
    attention: int
    decisions: int
    overrides: int  # confirmed as right where Verity flagged it: Verity was overridden
    upheld: int  # wrong product removed or sent back: Verity was right


async def daily_counts(conn: psycopg.AsyncConnection, f: AuditFilter) -> list[DayCount]:
    """Verdicts and decisions per day of the verification (UTC), days without any omitted."""
    where, args = _audit_where(f)
    query = f"""SELECT (v.created_at AT TIME ZONE 'UTC')::date AS day,
                  count(*) FILTER (WHERE NOT {_NEEDS}) AS clean,
                  count(*) FILTER (WHERE {_NEEDS}) AS attention,
                  count(d.id) AS decisions,
                  count(d.id) FILTER (WHERE d.action = 'confirmed' AND {_NEEDS}) AS overrides,
                  count(d.id) FILTER (WHERE d.action IN ('removed', 'returned')) AS upheld
                {_FROM} WHERE {where} GROUP BY 1 ORDER BY 1"""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), args)
        return [DayCount(**r) for r in await cur.fetchall()]
