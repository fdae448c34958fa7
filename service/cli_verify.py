"""`verity verify-pill`, `verity worker` and `verity outbox ...` from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from service.config import Settings
from service.errors import FhirNotConfigured
from service.fhir.client import create_fhir_client
from service.pipeline import load_pill_service
from service.store.database import Database
from service.verify.references import parse_reference
from service.workflows import pill
from service.workflows.orders import StaticOrderSource
from service.workflows.pill import ORDER_TYPE, Caller, PillRequest
from service.writeback.relay import outbox_status, retry_row, run_worker


def verify_pill(args: argparse.Namespace, settings: Settings) -> int:
    """Verify photos against an order from a file (dry run) or the FHIR server."""
    return asyncio.run(_verify_pill(args, settings))


async def _verify_pill(args: argparse.Namespace, settings: Settings) -> int:
    photos = [Path(p).read_bytes() for p in args.photo]
    fhir = await create_fhir_client(settings.fhir) if settings.fhir.base_url else None
    db = Database(settings)
    try:
        source: Any
        if Path(args.medication_request).is_file():
            source, order_ref = StaticOrderSource.from_file(Path(args.medication_request))
        elif fhir is None:
            raise FhirNotConfigured(
                "not a file, and no FHIR server is configured (VERITY_FHIR__BASE_URL)"
            )
        else:
            source = fhir
            order_ref = parse_reference(args.medication_request, ORDER_TYPE, fhir.base_url)
        await db.start()
        pills = await asyncio.to_thread(load_pill_service, settings)
        req = PillRequest(order_ref, photos, caller=Caller(subject="verity cli"))
        deliver = fhir is not None and source is fhir
        _, recorded = await pill.verify_pill(
            pills, settings, req, source, db.pool.connection, deliver=deliver
        )
        print(json.dumps(recorded.result, indent=2))
        return 0
    finally:
        if fhir is not None:
            await fhir.aclose()
        await db.stop()


def worker(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver the outbox until SIGINT/SIGTERM (a separately scaled relay)."""
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
        await db.start(run_migrations=False)
        return await work(db.pool)
    finally:
        await db.stop()


def outbox_show(args: argparse.Namespace, settings: Settings) -> int:
    state = asyncio.run(_with_pool(settings, outbox_status))
    print(json.dumps(state.__dict__, indent=2, default=str))
    return 0


def outbox_retry(args: argparse.Namespace, settings: Settings) -> int:
    found = asyncio.run(_with_pool(settings, lambda pool: retry_row(pool, args.id)))
    print(f"outbox row {args.id} requeued" if found else f"no dead outbox row {args.id}")
    return 0 if found else 1


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vp = sub.add_parser(
        "verify-pill", help="check photos against a MedicationRequest (file = dry run)"
    )
    vp.add_argument(
        "--medication-request",
        required=True,
        metavar="FILE_OR_URL",
        help="a JSON file (MedicationRequest or Bundle), or an id/URL on the FHIR server",
    )
    vp.add_argument("--photo", required=True, action="append", metavar="PHOTO")
    vp.set_defaults(handler=verify_pill)
    sub.add_parser("worker", help="run the outbox relay on its own").set_defaults(handler=worker)
    ob = sub.add_parser("outbox", help="the FHIR write-back queue")
    ob_sub = ob.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    ob_sub.add_parser("status", help="counts, oldest pending, dead letters").set_defaults(
        handler=outbox_show
    )
    retry = ob_sub.add_parser("retry", help="requeue a dead-lettered row now")
    retry.add_argument("id", type=int)
    retry.set_defaults(handler=outbox_retry)
