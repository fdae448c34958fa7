"""Verification audit rows, idempotency lookups, and the audit reviewers' filtered list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
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
