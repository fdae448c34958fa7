"""`verity demo`: the main job on the embedded defaults. Builds the rendered demo library,
checks a correct and a wrong dispense against sample orders, and prints the verdicts and the
FHIR resources Verity writes (to the configured FHIR server, or as a dry run)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import psycopg

from service.config import Settings
from service.demo_library import DEMO_PILLS, DemoPill, demo_order, phone_photo, reference_images
from service.fhir.client import create_fhir_client
from service.pipeline import Connect, PillService, load_pill_service, reuse
from service.store.database import Database
from service.workflows.library import enrol_products
from service.workflows.orders import StaticOrderSource
from service.workflows.pill import Caller, PillRequest, verify_pill
from service.writeback.relay import deliver_batch, outbox_status

PATIENT = "Patient/demo-patient-1"
_BY_ID = {p.product.id: p for p in DEMO_PILLS}
# (what happens, product ordered, product in the photo, pills in the photo)
SCENARIOS = [
    ("correct dispense", "demo-metformin-500-a", "demo-metformin-500-a", 1),
    ("generic twin of the ordered drug", "demo-metformin-500-a", "demo-metformin-500-b", 1),
    ("wrong pill: white round look-alike", "demo-metformin-500-a", "demo-amlodipine-5", 1),
    ("two tablets for a one-tablet dose", "demo-lisinopril-10", "demo-lisinopril-10", 2),
]


async def enrol_demo_library(conn: psycopg.AsyncConnection, pills: PillService) -> int:
    """Upsert the rendered products and enrol their references (idempotent: same bytes)."""
    entries = ((p.product, ((f"rendered-{i}", im) for i, im in enumerate(reference_images(p))))
               for p in DEMO_PILLS)  # fmt: skip
    return (await enrol_products(pills, reuse(conn), entries)).images


def _resources(result: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = (result.get("fhir") or {}).get("bundle") or {}
    return [e["resource"] for e in bundle.get("entry", [])]


async def run_demo(settings: Settings) -> int:
    """Print what Verity decides and writes for each scenario."""
    t0 = time.perf_counter()
    db = Database(settings)
    fhir = await create_fhir_client(settings.fhir) if settings.fhir.base_url else None
    try:
        await db.start()
        pills = await asyncio.to_thread(load_pill_service, settings)
        where = "embedded PostgreSQL" if db.embedded else "DATABASE_URL"
        print(f"Verity demo: {where} under {settings.data_dir}, model {pills.model_version}")
        async with db.pool.connection() as conn:
            refs = await enrol_demo_library(conn, pills)
        print(f"Demo library: {len(DEMO_PILLS)} rendered products, {refs} reference images\n")
        for n, (title, ordered, shown, count) in enumerate(SCENARIOS, 1):
            await _scenario(db.pool.connection, pills, settings, n, title, _BY_ID[ordered],
                            _BY_ID[shown], count, deliver=fhir is not None)  # fmt: skip
        if fhir is not None:
            await _deliver(db, fhir, settings)
        print(f"\nDone in {time.perf_counter() - t0:.1f} s. Every result is in the audit table;")
        print("a pharmacist or nurse confirms before administration (AI-assisted check).")
        return 0
    finally:
        if fhir is not None:
            await fhir.aclose()
        await db.stop()


async def _scenario(
    connect: Connect, pills: PillService, settings: Settings, n: int, title: str,
    ordered: DemoPill, shown: DemoPill, count: int, *, deliver: bool,
) -> None:  # fmt: skip
    order = demo_order(ordered, f"demo-order-{n}", PATIENT)
    source = StaticOrderSource([order])
    req = PillRequest(
        order_ref=f"MedicationRequest/{order['id']}",
        photos=[phone_photo(shown, seed=n, count=count)],
        patient_ref=PATIENT,
        caller=Caller(subject="verity demo", client_id="verity-demo"),
    )
    v, recorded = await verify_pill(pills, settings, req, source, connect, deliver=deliver)
    result = recorded.result
    print(f"[{n}] {title}: ordered {ordered.product.name}, photo shows "
          f"{count} x {shown.product.name}")  # fmt: skip
    for pill in v.pills:
        best = pill.candidates[0] if pill.candidates else None
        named = f"{best.product.id} (score {best.score:.2f})" if best else "nothing"
        print(f"    pill {pill.index + 1}: {pill.verdict.value:<14} best match {named}")
    findings = ", ".join(f.value for f in v.findings) or "none"
    print(f"    verdict: {v.verdict.value}; findings: {findings}; FHIR: {result['fhir']['status']}")
    if result["fhir"]["status"] == "dry_run":
        for res in _resources(result):
            if res["resourceType"] in ("DetectedIssue", "Provenance"):
                print(f"    would write {res['resourceType']}:")
                print("      " + json.dumps(res, indent=2).replace("\n", "\n      "))
    print()


async def _deliver(db: Database, fhir: Any, settings: Settings, timeout_s: float = 30) -> None:
    """Run the relay until the queue is empty (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await deliver_batch(db.pool, fhir, settings.outbox) == 0:
            if (await outbox_status(db.pool)).counts["pending"] == 0:
                print(f"All findings delivered to {settings.fhir.base_url}")
                return
            await asyncio.sleep(0.5)
    print("Some findings are still queued; `verity outbox status` shows them")
