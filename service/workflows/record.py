"""Recording a verification of any domain: its audit row and its outbox row (the FHIR write) in
ONE transaction, idempotent on the caller's key. Pills use it today; imaging studies next."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from service.errors import InternalError
from service.metrics import FINDINGS, VERIFICATIONS
from service.store import outbox
from service.store import verification_images as pictures
from service.store import verifications as audit
from service.store.verification_images import StoredImage
from service.writeback.bundle import OutboxWrite


@dataclass(frozen=True)
class Caller:
    """Who asked (from the bearer token), as the audit row keeps it."""

    subject: str | None = None
    client_id: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recorded:
    """A recorded verification (its JSON, with what happens in the EHR) and whether this call
    created it."""

    result: dict[str, Any]
    created: bool


async def record(
    conn: psycopg.AsyncConnection,
    row: audit.NewVerification,
    write: OutboxWrite | None,
    *,
    deliver: bool,
    findings: Iterable[str] = (),
    images: Sequence[StoredImage] = (),
) -> Recorded:
    """The audit row, its outbox row and its kept pictures in ONE transaction; a lost
    idempotency race returns the winner's result instead of writing a second verification."""
    result = {**row.result, "fhir": fhir_summary(write, deliver=deliver)}
    row = dataclasses.replace(row, result=result)
    async with conn.transaction():
        inserted = await audit.insert(conn, row)
        if inserted and write is not None and deliver:
            await outbox.enqueue(
                conn, resource_type=write.resource_type, identifier_system=write.identifier_system,
                identifier_value=write.identifier_value, payload=write.bundle,
                verification_id=row.id,
            )  # fmt: skip
        if inserted:
            await pictures.insert(conn, row.id, images)
    if not inserted:
        # Only an idempotency key can collide: a concurrent request with the same key won.
        existing = await audit.find_by_idempotency_key(
            conn, row.caller_client_id, row.idempotency_key or "", row.request_sha256
        )
        if existing is None:
            raise InternalError("verification was neither recorded nor found")
        return Recorded(existing.result, False)
    VERIFICATIONS.labels(row.kind, row.verdict).inc()
    for finding in findings:
        FINDINGS.labels(finding).inc()
    return Recorded(result, True)


def fhir_summary(write: OutboxWrite | None, *, deliver: bool) -> dict[str, Any]:
    """What happens in the EHR: nothing, queued for the relay, or (dry run) what would be."""
    if write is None:
        return {
            "status": "not_written",
            "reason": "a clean result is not written (VERITY_OUTBOX__WRITE_MATCH)",
        }
    if not deliver:
        return {"status": "dry_run", "bundle": write.bundle}
    return {"status": "queued", "identifier": f"{write.identifier_system}|{write.identifier_value}"}
