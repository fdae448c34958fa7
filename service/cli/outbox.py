"""`verity worker` and `verity outbox status|retry`: the FHIR write-back queue."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

import psycopg

from service.config import Settings
from service.errors import DatabaseUnavailable, FhirNotConfigured
from service.fhir.client import create_fhir_client
from service.store.database import Database
from service.store.pool import connect
from service.workflows.imaging.jobs import serve_jobs
from service.writeback.relay import outbox_status, retry_row, run_relay


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Own pool and FHIR client; the outbox relay and the imaging jobs until `stop`."""
    db = Database(settings)
    await db.start(run_migrations=False)
    fhir = await create_fhir_client(settings.fhir)
    try:
        await asyncio.gather(
            run_relay(
                db.pool, fhir, settings.outbox, stop, settings.writeback.max_transaction_entries
            ),
            serve_jobs(db.pool, settings, fhir, stop),
        )
    finally:
        await fhir.aclose()
        await db.stop()


def worker(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver the outbox and run imaging jobs until SIGINT/SIGTERM (scaled separately)."""
    if not settings.fhir.base_url:
        raise FhirNotConfigured("the worker delivers to VERITY_FHIR__BASE_URL; none is set")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(run())
    return 0


async def _with_pool(settings: Settings, work: Any) -> Any:
    db = Database(settings)
    try:
        url = await db.resolve_url()
        try:  # fail with the driver's reason now, not a pool timeout (and its retry logs) later
            probe = await connect(url, settings.db, vector_types=False)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot reach the database: {exc}") from None
        await probe.close()
        await db.start(run_migrations=False)
        return await work(db.pool)
    finally:
        await db.stop()


def outbox_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print the write-back queue: counts, oldest pending, dead letters."""
    state = asyncio.run(_with_pool(settings, outbox_status))
    print(json.dumps(state.__dict__, indent=2, default=str))
    return 0


def outbox_retry(args: argparse.Namespace, settings: Settings) -> int:
    """Requeue one dead-lettered row; exit 1 when there is no such dead row."""
    found = asyncio.run(_with_pool(settings, lambda pool: retry_row(pool, args.id)))
    print(f"outbox row {args.id} requeued" if found else f"no dead outbox row {args.id}")
    return 0 if found else 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "worker",
        help="run the outbox relay and the imaging jobs on their own (several may run at once)",
    ).set_defaults(handler=worker)
    ob = sub.add_parser("outbox", help="the FHIR write-back queue")
    ob_sub = ob.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    ob_sub.add_parser("status", help="counts, oldest pending, dead letters").set_defaults(
        handler=outbox_show
    )
    retry = ob_sub.add_parser("retry", help="requeue a dead-lettered row now")
    retry.add_argument(
        "id", type=int, metavar="ID", help="the outbox row id (from verity outbox status)"
    )
    retry.set_defaults(handler=outbox_retry)
