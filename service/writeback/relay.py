"""The outbox relay: delivers queued transaction Bundles to the EHR's FHIR server.

Runs inside `verity serve` or alone (`verity worker`, `cli/outbox.py`); any number
of relays can run at once: rows are claimed with SKIP LOCKED and every Bundle is a conditional
create, so a retry after a lost response finds the resource instead of writing it again.
A Bundle larger than the server's transaction cap is posted in parts (`parts.py`), in order;
a retry re-sends them all, and the server matches what the earlier attempt created.
"""

from __future__ import annotations

import asyncio
import logging
import random

import psycopg
from prometheus_client import Counter, Gauge
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.config import DEFAULT_MAX_TRANSACTION_ENTRIES, OutboxSettings
from service.errors import ClientError, DatabaseUnavailable, InternalError, VerityError
from service.fhir.client import FhirClient
from service.store import outbox
from service.writeback.bundle import created_location
from service.writeback.parts import Resource, locations, part_bundle, plan_parts

log = logging.getLogger(__name__)

DELIVERED = Counter("verity_outbox_delivered_total", "Outbox rows the FHIR server accepted")
FAILED = Counter(
    "verity_outbox_failed_attempts_total", "Delivery attempts that failed", ["error_code"]
)
DEAD = Counter(
    "verity_outbox_dead_lettered_total", "Outbox rows moved to dead-letter", ["error_code"]
)
PENDING = Gauge("verity_outbox_pending_rows", "Outbox rows waiting for delivery")
DEAD_ROWS = Gauge("verity_outbox_dead_rows", "Outbox rows in dead-letter")


def backoff_s(attempts: int, settings: OutboxSettings) -> float:
    """Exponential backoff with jitter (50-100% of the capped exponential)."""
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** max(attempts - 1, 0))
    return float(ceiling * random.uniform(0.5, 1.0))


async def deliver_batch(
    pool: AsyncConnectionPool,
    fhir: FhirClient,
    settings: OutboxSettings,
    max_entries: int = DEFAULT_MAX_TRANSACTION_ENTRIES,
) -> int:
    """Claim one batch of due rows and deliver each, in transactions of at most `max_entries`
    (VERITY_WRITEBACK__MAX_TRANSACTION_ENTRIES); returns how many were claimed."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        rows = await outbox.claim_due(conn, limit=settings.batch_size, lease_s=settings.lease_s)
    for row in rows:
        try:
            await _deliver(pool, fhir, settings, row, max_entries)
        except (psycopg.Error, PoolTimeout, DatabaseUnavailable):
            raise  # the database is gone: the row's lease brings it back later
        except Exception as exc:  # a bug or an unmapped upstream failure: retry later, logged
            log.error("outbox row %d: unexpected %s", row.id, type(exc).__name__, exc_info=exc)
            async with pool.connection() as conn:
                await conn.set_autocommit(True)
                await outbox.mark_failed(
                    conn, row.id, f"unexpected {type(exc).__name__}",
                    backoff_s(row.attempts, settings),
                )  # fmt: skip
            FAILED.labels("unexpected").inc()
    return len(rows)


async def post_transaction(fhir: FhirClient, bundle: Resource, max_entries: int) -> Resource:
    """POST `bundle` whole if it fits, else part by part; the transaction-response of the
    whole Bundle (its entries answer in the Bundle's order)."""
    entries = bundle.get("entry") or []
    parts = plan_parts(entries, max_entries)
    if len(parts) == 1:
        return await fhir.transaction(bundle)  # exactly as built
    answers: list[Resource] = [{} for _ in entries]
    located: dict[str, str] = {}
    for part in parts:
        response = await fhir.transaction(part_bundle(entries, part, located))
        located |= locations(entries, part, response)
        for i, answer in zip(part, response["entry"], strict=True):
            answers[i] = answer
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}


async def _deliver(
    pool: AsyncConnectionPool,
    fhir: FhirClient,
    settings: OutboxSettings,
    row: outbox.OutboxRow,
    max_entries: int,
) -> None:
    try:
        response = await post_transaction(fhir, row.payload, max_entries)
    except VerityError as exc:
        error = f"{exc.code}: {exc.detail}"
        permanent = isinstance(exc, ClientError | InternalError) or not exc.retryable
        permanent = permanent and exc.code != "VERITY-5021"  # credentials may be fixed
        async with pool.connection() as conn:
            await conn.set_autocommit(True)
            if permanent or row.attempts >= settings.max_attempts:
                await outbox.mark_dead(conn, row.id, error)
                DEAD.labels(exc.code).inc()
                log.warning(
                    "outbox row %d dead after %d attempts: %s", row.id, row.attempts, exc.code
                )
            else:
                await outbox.mark_failed(conn, row.id, error, backoff_s(row.attempts, settings))
                FAILED.labels(exc.code).inc()
        return
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        await outbox.mark_delivered(
            conn, row.id, created_location(row.payload, response, row.resource_type)
        )
    DELIVERED.inc()


async def refresh_gauges(pool: AsyncConnectionPool) -> outbox.OutboxStatus:
    """Read the queue's state and publish it as gauges."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        state = await outbox.status(conn, dead_limit=0)
    PENDING.set(state.counts["pending"])
    DEAD_ROWS.set(state.counts["dead"])
    return state


async def run_relay(
    pool: AsyncConnectionPool,
    fhir_client: FhirClient,
    settings: OutboxSettings,
    stop_event: asyncio.Event,
    max_entries: int = DEFAULT_MAX_TRANSACTION_ENTRIES,
) -> None:
    """Deliver until stop_event is set; sleeps poll_interval_s when nothing is due."""
    log.info("outbox relay started")
    loops = 0
    while not stop_event.is_set():
        try:
            claimed = await deliver_batch(pool, fhir_client, settings, max_entries)
            if loops % 30 == 0:
                await refresh_gauges(pool)
            loops += 1
        except (psycopg.Error, PoolTimeout, DatabaseUnavailable) as exc:
            log.warning("outbox relay: database unavailable (%s)", type(exc).__name__)
            claimed = 0
        except Exception as exc:  # the relay must outlive any one failure; it is logged
            log.error("outbox relay: unexpected %s", type(exc).__name__, exc_info=exc)
            claimed = 0
        if claimed == 0:
            try:
                await asyncio.wait_for(stop_event.wait(), timeout=settings.poll_interval_s)
            except TimeoutError:
                pass
    log.info("outbox relay stopped")


async def outbox_status(pool: AsyncConnectionPool, dead_limit: int = 20) -> outbox.OutboxStatus:
    """`verity outbox status`: counts, oldest pending age, newest dead letters."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        return await outbox.status(conn, dead_limit=dead_limit)


def format_status(state: outbox.OutboxStatus) -> str:
    """Plain-text `verity outbox status` (no payloads: they may hold patient data)."""
    c = state.counts
    age = f"{state.oldest_pending_s:.0f} s" if state.oldest_pending_s is not None else "-"
    lines = [
        f"pending {c['pending']}  delivered {c['delivered']}  dead {c['dead']}  "
        f"oldest pending {age}"
    ]
    for r in state.dead:
        lines.append(f"  dead #{r.id} {r.resource_type} attempts={r.attempts}: {r.last_error}")
    return "\n".join(lines)


async def retry_row(pool: AsyncConnectionPool, row_id: int) -> bool:
    """`verity outbox retry ID`: requeue a dead row now; False if there is no such row."""
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        return await outbox.retry(conn, row_id)
