"""Production write-back Bundles (Device + DetectedIssue + Provenance, built by the one builder)
for the relay tests, the FHIR client test and bench_relay."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from service.config import WritebackSettings
from service.store import outbox
from service.verify.pills.results import (
    Candidate,
    ModelInfo,
    PillResult,
    PillVerification,
    ProductRef,
    Verdict,
)
from service.writeback.bundle import OutboxWrite
from service.writeback.pills import pill_write

ORDERED = ProductRef("lib-lis-10", "Lisinopril 10 mg tablet", ("00093-7339-01",), "314077")
SHOWN = ProductRef("lib-met-500", "Metformin 500 mg tablet", ("00093-1048-01",), "861007")
MODELS = [ModelInfo("efficientnet-lite0", "1.0.0"), ModelInfo("pp-ocrv4-rec", "1.4.4")]


def mismatch(patient: str, verification_id: str | None = None) -> PillVerification:
    """A MISMATCH verification for `patient`, as the decision step produces it."""
    pill = PillResult(
        0, Verdict.MISMATCH, (10, 10, 40, 40), 0, (Candidate(SHOWN, 0.91, "MATCH", {}),), 0.12
    )
    return PillVerification(
        id=verification_id or str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        order_ref="MedicationRequest/mr-sample",
        patient_ref=patient,
        dispense_ref=None,
        order_status="active",
        medication_text="lisinopril 10 MG Oral Tablet",
        expected=[ORDERED],
        verdict=Verdict.MISMATCH,
        pills=[pill],
        findings=[],
        count_expected=1,
        photo_sha256=[hashlib.sha256(b"sample photo").hexdigest()],
        models=list(MODELS),
        caller="sample",
    )


def write_for(patient: str, system: str, verification_id: str | None = None) -> OutboxWrite:
    """The Bundle production would queue for a MISMATCH, DetectedIssue identified in `system`."""
    write = pill_write(
        mismatch(patient, verification_id), WritebackSettings(identifier_system=system)
    )
    assert write is not None
    return write


async def enqueue(pool: AsyncConnectionPool, write: OutboxWrite) -> int | None:
    """Queue one write as the workflow does; None if that identifier is already queued."""
    async with pool.connection() as conn:
        return await outbox.enqueue(
            conn,
            resource_type=write.resource_type,
            identifier_system=write.identifier_system,
            identifier_value=write.identifier_value,
            payload=write.bundle,
        )


async def enqueue_issues(pool: AsyncConnectionPool, patient: str, n: int, system: str) -> list[str]:
    """Queue `n` production write-backs for `patient`; returns their DetectedIssue identifiers."""
    writes = [write_for(patient, system) for _ in range(n)]
    async with pool.connection() as conn, conn.transaction():
        for w in writes:
            row = await outbox.enqueue(
                conn,
                resource_type=w.resource_type,
                identifier_system=w.identifier_system,
                identifier_value=w.identifier_value,
                payload=w.bundle,
            )
            assert row is not None
    return [w.identifier_value for w in writes]
