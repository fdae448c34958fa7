"""`verity demo`: the main job on a throwaway database. Builds the rendered demo library,
checks four sample dispenses against their orders and four generated imaging studies against
theirs, and says in words what Verity decided, what
it would write to the EHR, and what its audit trail holds; the user's library is never used."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from pydantic import SecretStr

from service.config import Settings
from service.demo.imaging import run_imaging_demo
from service.demo.renderer import DEMO_PILLS, DemoPill, demo_order, phone_photo, reference_images
from service.errors import UnknownProduct
from service.fhir.client import create_fhir_client
from service.fhir.orders import StaticOrderSource
from service.store import migrate, products
from service.store import verifications as audit
from service.store.database import Database
from service.store.embedded import throwaway_database
from service.store.pool import Connect, reuse
from service.verify.pills.results import Finding, PillResult, PillVerification, Verdict
from service.workflows.pills.enrol import enrol_products
from service.workflows.pills.service import PillService, load_pill_service
from service.workflows.pills.verify import PillRequest, verify_pill
from service.workflows.record import Caller
from service.writeback.relay import deliver_batch, outbox_status

PATIENT = "Patient/demo-patient-1"
_BY_ID = {p.product.id: p for p in DEMO_PILLS}
# (what happens, product ordered, product in the photo, pills in the photo)
SCENARIOS = [
    ("Correct dispense", "demo-metformin-500-a", "demo-metformin-500-a", 1),
    ("Generic twin: same drug and strength, another maker", "demo-metformin-500-a",
     "demo-metformin-500-b", 1),
    ("Wrong drug: a white round look-alike", "demo-metformin-500-a", "demo-amlodipine-5", 1),
    ("Double dose: two tablets for a one-tablet dose", "demo-lisinopril-10",
     "demo-lisinopril-10", 2),
]  # fmt: skip
_INDENT = " " * 10  # under the text after "Verdict:  "


async def enrol_demo_library(conn: psycopg.AsyncConnection, pills: PillService) -> int:
    """Upsert the rendered products and enrol their references (idempotent: same bytes)."""
    entries = ((p.product, ((f"rendered-{i}", im) for i, im in enumerate(reference_images(p))))
               for p in DEMO_PILLS)  # fmt: skip
    return (await enrol_products(pills, reuse(conn), entries)).images


async def remove_demo_library(conn: psycopg.AsyncConnection) -> None:
    """Delete the rendered products (and, by cascade, their images and vectors): they must never
    stay in a library that real photos are identified against."""
    async with conn.transaction():
        for pill in DEMO_PILLS:
            try:
                await products.delete_product(conn, pill.product.id)
            except UnknownProduct:
                continue  # never enrolled (the demo stopped early)


@asynccontextmanager
async def _demo_database(settings: Settings, database_url: str | None) -> AsyncIterator[Database]:
    """The database named on purpose (`--database-url`), else a throwaway embedded one; an
    inherited DATABASE_URL is the user's production database and is not used."""
    async with _url(database_url) as url:
        db = Database(settings.model_copy(update={"database_url": SecretStr(url)}))
        try:
            await db.start(run_migrations=database_url is not None)
            yield db
        finally:
            await db.stop()


@asynccontextmanager
async def _url(database_url: str | None) -> AsyncIterator[str]:
    if database_url:
        yield database_url
    else:
        async with throwaway_database("verity-demo-") as url:
            await migrate.upgrade(url)  # quietly: a throwaway schema is not worth a log line
            yield url


async def run_demo(
    settings: Settings, *, database_url: str | None = None, show_fhir: bool = False
) -> int:
    """Print what Verity decides and writes for each scenario, then the audit trail."""
    t0 = time.perf_counter()
    database_url = database_url or None
    fhir = await create_fhir_client(settings.fhir) if settings.fhir.base_url else None
    try:
        pills = await asyncio.to_thread(load_pill_service, settings)
        async with _demo_database(settings, database_url) as db:
            _header(settings, pills, database_url is not None)
            try:
                async with db.pool.connection() as conn:
                    refs = await enrol_demo_library(conn, pills)
                print(f"Library:  {len(DEMO_PILLS)} rendered demo products, {refs} reference "
                      "images (drawn by Verity, not photos of real medicines)\n")  # fmt: skip
                ids = []
                for n, (title, ordered, shown, count) in enumerate(SCENARIOS, 1):
                    ids.append(await _scenario(db.pool.connection, pills, settings, n, title,
                                               _BY_ID[ordered], _BY_ID[shown], count,
                                               deliver=fhir is not None,
                                               show_fhir=show_fhir))  # fmt: skip
                ids += await run_imaging_demo(
                    db.pool.connection, settings, first=len(ids) + 1, deliver=fhir is not None
                )
                if fhir is not None:
                    await _deliver(db, fhir, settings, throwaway=database_url is None)
                async with db.pool.connection() as conn:
                    await _audit_trail(conn, ids, throwaway=database_url is None)
            finally:
                if database_url is not None:
                    async with db.pool.connection() as conn:
                        await remove_demo_library(conn)
        print(f"\nDone in {time.perf_counter() - t0:.1f} s. AI-assisted checks: a pharmacist or "
              "nurse confirms the medication before it is given, a radiographer the study "
              "before it is read.")  # fmt: skip
        return 0
    finally:
        if fhir is not None:
            await fhir.aclose()


def _header(settings: Settings, pills: PillService, explicit: bool) -> None:
    print("Verity demo: four sample dispenses and four imaging studies checked against their "
          "orders (rendered pills, generated studies, sample orders, no real patient)")  # fmt: skip
    if explicit:
        print("Database: the one given with --database-url; the demo products are removed "
              "from its library at the end, its audit table keeps the eight checks")  # fmt: skip
    else:
        print("Database: a throwaway one, deleted at the end; your library and audit trail "
              f"(under {settings.data_dir}, or DATABASE_URL) are not touched")  # fmt: skip
    print(f"Models:   {pills.model_version}")
    print(f"Score:    how sure Verity is that a pill is a given drug, 0 to 1; the ordered drug "
          f"needs {settings.decision.match_threshold:.2f} or more to count as a match")  # fmt: skip


async def _scenario(
    connect: Connect, pills: PillService, settings: Settings, n: int, title: str,
    ordered: DemoPill, shown: DemoPill, count: int, *, deliver: bool, show_fhir: bool,
) -> str:  # fmt: skip
    order = demo_order(ordered, f"demo-order-{n}", PATIENT)
    req = PillRequest(
        order_ref=f"MedicationRequest/{order['id']}",
        photos=[phone_photo(shown, seed=n, count=count)],
        patient_ref=PATIENT,
        caller=Caller(subject="verity demo", client_id="verity-demo"),
    )
    v, recorded = await verify_pill(
        pills, settings, req, StaticOrderSource([order]), connect, deliver=deliver
    )
    dose = f", {v.count_expected} tablet per dose" if v.count_expected else ""
    print(f"[{n}] {title}")
    print(f"    Ordered:  {_product(ordered.product.id)}{dose}")
    print(f"    Photo:    {count} x {shown.product.name} by {shown.product.labeler} "
          "(what the demo photographed)")  # fmt: skip
    for pill in v.pills:
        print(f"    Pill {pill.index + 1}:   {_identified(pill, v, ordered)}")
    if not v.pills:
        print("    Pills:    none found in the photo")
    print(f"    Verdict:  {verdict_line(v, ordered)}")
    for line in _ehr_lines(recorded.result["fhir"], settings):
        print(f"    {line}")
    if show_fhir:
        for res in _resources(recorded.result):
            if res["resourceType"] in ("DetectedIssue", "Provenance"):
                print(f"    would write {res['resourceType']}:")
                print("      " + json.dumps(res, indent=2).replace("\n", "\n      "))
    print()
    return v.id


def _product(product_id: str, name: str | None = None) -> str:
    pill = _BY_ID.get(product_id)
    if pill is None:
        return name or product_id
    p = pill.product
    return f"{p.name} by {p.labeler} (NDC {p.ndcs[0]})"


def _identified(pill: PillResult, v: PillVerification, ordered: DemoPill) -> str:
    """What the pill was identified as, with its score, and how that relates to the order."""
    if not pill.candidates:
        return "not recognised as any product in the library"
    best = pill.candidates[0]
    what = f"{_product(best.product.id, best.product.name)}, score {best.score:.2f}"
    if best.product.id == ordered.product.id:
        relation = "the ordered product"
    elif best.product.id in {e.id for e in v.expected}:
        relation = "same drug and strength as ordered, another maker"
    else:
        relation = f"NOT the ordered drug (the ordered drug scored {pill.expected_score or 0:.2f})"
    return f"{what}: {relation}"


def verdict_line(v: PillVerification, ordered: DemoPill) -> str:
    """OK / PROBLEM / CHECK and the reason, in words a pharmacist reads at a glance."""
    want = ordered.product.name
    problems = []
    if v.verdict is Verdict.MISMATCH:
        bad = next(p for p in v.pills if p.verdict is Verdict.MISMATCH)
        looks = bad.candidates[0].product.name if bad.candidates else "another product"
        problems.append(f"wrong drug: the pill looks like {looks}, not the ordered {want}")
    if Finding.COUNT_MISMATCH in v.findings:
        problems.append(f"wrong quantity: {len(v.pills)} tablets in the photo, the order is "
                        f"{v.count_expected} per dose")  # fmt: skip
    if Finding.ORDER_INACTIVE in v.findings:
        problems.append(f"the order is not active (status {v.order_status})")
    if Finding.PATIENT_MISMATCH in v.findings:
        problems.append("the order is for another patient")
    if problems:
        return "PROBLEM - " + "; ".join(problems) + ". Stop and check before it is given."
    checks = {
        Verdict.UNCERTAIN: f"could not confirm the pill is {want}: check it by eye",
        Verdict.NOT_IN_LIBRARY: f"{want} has no reference images in the library: check by eye",
        Verdict.NO_PILL_FOUND: "no pill found in the photo: retake it",
    }
    if v.verdict in checks:
        return "CHECK - " + checks[v.verdict]
    which = "the pill is" if len(v.pills) == 1 else f"all {len(v.pills)} pills are"
    return f"OK - {which} the ordered drug ({want}) and the count is right"


def _ehr_lines(fhir: dict[str, Any], settings: Settings) -> list[str]:
    """What happens in the EHR, in words (`not_written`, `dry_run`, `queued`)."""
    status = fhir["status"]
    if status == "not_written":
        return ["EHR:      nothing written: a correct dispense is kept in Verity's audit trail",
                f"{_INDENT}only (VERITY_OUTBOX__WRITE_MATCH=true writes matches too)"]  # fmt: skip
    issue = next((r for r in _resources({"fhir": fhir}) if r["resourceType"] == "DetectedIssue"),
                 None)  # fmt: skip
    what = "a DetectedIssue"
    if issue is not None:
        what += f' "{issue["code"]["text"]}" (severity {issue.get("severity", "unset")})'
    what += " and a Provenance naming the AI model"
    if status == "dry_run":
        return ["EHR:      dry run, nothing sent: no FHIR server is configured "
                "(VERITY_FHIR__BASE_URL).", f"{_INDENT}With one, Verity would write {what}",
                f"{_INDENT}(--show-fhir prints them)."]  # fmt: skip
    return [f"EHR:      queued for {settings.fhir.base_url}: a DetectedIssue and its Provenance "
            "(the relay sends them below)"]  # fmt: skip


def _resources(result: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = (result.get("fhir") or {}).get("bundle") or {}
    return [e["resource"] for e in bundle.get("entry", [])]


async def _audit_trail(conn: psycopg.AsyncConnection, ids: list[str], *, throwaway: bool) -> None:
    """The demo's verifications as the audit table recorded them, and where the real one is."""
    where = "the throwaway database, deleted next" if throwaway else "the --database-url database"
    print(f"Audit trail: the checks as Verity recorded them (in {where}):")
    for vid in ids:
        row = await audit.get(conn, vid)
        codes = [*row.result.get("findings", [])]
        if row.kind == "imaging":
            codes = codes or ["no finding"]
        elif row.verdict != Verdict.MATCH or not codes:
            codes.insert(0, row.verdict)
        else:
            codes.append(f"(pill identity {row.verdict})")
        summary = "OK" if not row.result.get("needs_attention") else "PROBLEM"
        if row.verdict in (Verdict.UNCERTAIN, Verdict.NOT_IN_LIBRARY, Verdict.NO_PILL_FOUND,
                           "INCOMPLETE"):  # fmt: skip
            summary = "CHECK"
        fhir = str(row.result["fhir"]["status"]).replace("_", " ")
        print(f"  {row.created_at.astimezone():%H:%M:%S}  {row.order_ref:<31} {summary:<8} "
              f"{' '.join(codes):<36} EHR: {fhir:<12} id {row.id}")  # fmt: skip
    print("On a real installation every check is kept in Verity's audit trail; it is shown by:")
    print(
        '  curl -H "Authorization: Bearer $TOKEN" '
        "'http://127.0.0.1:8420/v1/medication-verifications?patient=Patient/<id>'"
    )
    print(
        "  (scope system/Verification.rs; also ?order=, ?verdict=, ?since=, and "
        "/v1/medication-verifications/<id> for one)"
    )
    print("  and '/v1/imaging-verifications?patient=Patient/<id>' for the imaging studies "
          "(also ?study=, ?order=, ?outcome=);")  # fmt: skip
    print("and in the EHR by the FHIR searches DetectedIssue?patient=Patient/<id>, "
          "DiagnosticReport?patient=Patient/<id> and Provenance?target=DetectedIssue/<id> "
          "(docs/fhir.md).")  # fmt: skip


async def _deliver(
    db: Database, fhir: Any, settings: Settings, *, throwaway: bool, timeout_s: float = 30
) -> None:
    """Run the relay until the queue is empty (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cap = settings.writeback.max_transaction_entries
        if await deliver_batch(db.pool, fhir, settings.outbox, cap) == 0:
            if (await outbox_status(db.pool)).counts["pending"] == 0:
                print(f"All findings delivered to {settings.fhir.base_url}\n")
                return
            await asyncio.sleep(0.5)
    if throwaway:
        print(f"Some findings could not be delivered to {settings.fhir.base_url} in "
              f"{timeout_s:.0f} s; they are dropped with the throwaway database\n")  # fmt: skip
    else:
        print("Some findings are still queued; `verity outbox status` shows them\n")
