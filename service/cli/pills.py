"""`verity verify-pill`: photos checked against an order from a file (dry run) or the EHR."""

from __future__ import annotations

import argparse
import asyncio
import json
from functools import partial
from pathlib import Path
from typing import Any

from service.config import Settings
from service.errors import FhirNotConfigured, FileUnreadable
from service.fhir.client import FhirClient, create_fhir_client
from service.fhir.orders import StaticOrderSource
from service.fhir.references import parse_reference
from service.store.database import Database
from service.store.pool import rolled_back
from service.verify.pills.results import Finding, PillVerification, ProductRef, Verdict
from service.workflows.pills.service import load_pill_service
from service.workflows.pills.verify import ORDER_TYPE, OrderSource, PillRequest
from service.workflows.pills.verify import verify_pill as run_verification
from service.workflows.record import Caller

DRY_RUN_NOTE = (
    "An order from a file is a dry run: nothing is recorded in the audit table and nothing is "
    "sent to the EHR, because that order was never placed in the EHR and the audit trail holds "
    "only checks of real orders."
)


def verify_pill(args: argparse.Namespace, settings: Settings) -> int:
    """Verify photos against an order from a file (dry run) or the FHIR server."""
    return asyncio.run(_verify_pill(args, settings))


def read_photo(name: str) -> bytes:
    """A photo named on the command line, or one clear error (never a traceback)."""
    path = Path(name)
    if path.is_dir():
        raise FileUnreadable(f"{name} is a folder, not a photo")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FileUnreadable(f"{name}: {exc.strerror or exc}") from None


def is_order_file(value: str) -> bool:
    """A path (existing, or written like one) rather than an id, reference or URL."""
    if value.startswith(("http://", "https://")):
        return False
    return (
        Path(value).exists()
        or value.lower().endswith(".json")
        or value.startswith(("/", "./", "../", "~"))
    )


async def _order(value: str, fhir: FhirClient | None) -> tuple[OrderSource, str]:
    """The order's source and reference: a file (dry run), or the FHIR server."""
    if fhir is None:
        path = Path(value).expanduser()
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise FileUnreadable(f"order file {value} {what}")
        return StaticOrderSource.from_file(path)
    return fhir, parse_reference(value, ORDER_TYPE, fhir.base_url)


async def _verify_pill(args: argparse.Namespace, settings: Settings) -> int:
    photos = [read_photo(p) for p in args.photo]
    dry_run = is_order_file(args.medication_request)
    if not dry_run and not settings.fhir.base_url:
        raise FhirNotConfigured(
            f"{args.medication_request!r} is not a file, and no FHIR server is configured "
            "(VERITY_FHIR__BASE_URL) to read it from"
        )
    fhir = None if dry_run else await create_fhir_client(settings.fhir)
    db = Database(settings)
    try:
        source, order_ref = await _order(args.medication_request, fhir)
        await db.start()
        pills = await asyncio.to_thread(load_pill_service, settings)
        req = PillRequest(order_ref, photos, caller=Caller(subject="verity cli"))
        connect = partial(rolled_back, db.pool) if dry_run else db.pool.connection
        v, recorded = await run_verification(
            pills, settings, req, source, connect, deliver=not dry_run
        )
    finally:
        if fhir is not None:
            await fhir.aclose()
        await db.stop()
    if args.json:
        print(json.dumps({**recorded.result, "recorded": not dry_run}, indent=2))
    else:
        print("\n".join(summary(v, recorded.result["fhir"], settings, dry_run=dry_run)))
    return 0


def _name(p: ProductRef) -> str:
    return f"{p.id} {p.name or ''}".strip()


def _product(p: ProductRef) -> str:
    codes = [f"NDC {n}" for n in p.ndcs] + ([f"RxCUI {p.rxcui}"] if p.rxcui else [])
    return _name(p) + (f" ({', '.join(codes)})" if codes else "")


def _why(v: PillVerification, settings: Settings) -> str:
    """The reason for the overall verdict, in the words of the score bands."""
    match, review = settings.decision.match_threshold, settings.decision.review_threshold
    worst = next((p for p in v.pills if p.verdict == v.verdict), None)
    score = f"{worst.expected_score:.2f}" if worst and worst.expected_score is not None else "-"
    at = f"pill {worst.index + 1}" if worst else "the photo"
    best = _name(worst.candidates[0].product) if worst and worst.candidates else "nothing enrolled"
    return {
        Verdict.MATCH: f"every pill scores >= the match threshold {match:.2f} for the ordered drug",
        Verdict.UNCERTAIN: f"{at} scores {score} for the ordered drug, between the review "
        f"threshold {review:.2f} and the match threshold {match:.2f}: a person must look",
        Verdict.MISMATCH: f"{at} scores {score} for the ordered drug, under the review threshold "
        f"{review:.2f}; it looks most like {best}",
        Verdict.NOT_IN_LIBRARY: "no library product of the ordered drug has reference images to "
        "compare with (enrol one: verity library import)",
        Verdict.NO_PILL_FOUND: "no pill was found in the photos",
    }[v.verdict]


_FINDINGS = {
    Finding.ORDER_INACTIVE: "the order is not active (status {status})",
    Finding.PATIENT_MISMATCH: "the patient given is not the order's patient",
    Finding.COUNT_MISMATCH: "{seen} pill(s) seen, the order's dose is {dose}",
}


def _written(fhir: dict[str, Any], *, dry_run: bool) -> list[str]:
    """What goes to the EHR, and whether anything was recorded here."""
    status = fhir.get("status")
    if status == "queued":
        return [
            f"Write    queued for the EHR: DetectedIssue + Provenance ({fhir['identifier']})",
            "         recorded in the audit table (verity outbox status shows delivery)",
        ]
    stored = "dry run: nothing recorded in the audit table, nothing sent to the EHR"
    if status != "dry_run":
        return [f"Write    nothing for the EHR: {fhir.get('reason', status)}", f"         {stored}"]
    lines = ["Write    would write to the EHR (--json shows the resources):"]
    for entry in (fhir.get("bundle") or {}).get("entry", []):
        res = entry.get("resource", {})
        codings = (res.get("code") or {}).get("coding") or [{}]
        about = f" severity {res['severity']}: {codings[-1].get('display', '')}" if (
            "severity" in res) else ""  # fmt: skip
        lines.append(f"           {res.get('resourceType')}{about}")
    return [*lines, f"         {stored}"]


def summary(
    v: PillVerification, fhir: dict[str, Any], settings: Settings, *, dry_run: bool
) -> list[str]:
    """A short human account: ordered product, what was seen, verdict and why, what is written."""
    expected = [_product(p) for p in v.expected] or ["none in the library"]
    lines = [
        f"Order    {v.order_ref} ({v.order_status or 'no status'}): "
        f"{v.medication_text or 'named by code only'}",
        *(f"         expects {e}" for e in expected),
        f"Seen     {len(v.pills)} pill(s) in {len(v.photo_sha256)} photo(s)",
    ]
    for p in v.pills:
        best = p.candidates[0] if p.candidates else None
        looks = f"most like {_name(best.product)} ({best.score:.2f})" if best else "no match"
        score = "-" if p.expected_score is None else f"{p.expected_score:.2f}"
        lines.append(f"         pill {p.index + 1} (photo {p.photo_index + 1}): {p.verdict.value}, "
                     f"ordered drug {score}; {looks}")  # fmt: skip
    lines.append(f"Verdict  {v.verdict.value}: {_why(v, settings)}")
    facts = {"status": v.order_status, "seen": len(v.pills), "dose": v.count_expected}
    lines += [f"Finding  {f.value}: {_FINDINGS[f].format(**facts)}" for f in v.findings]
    return lines + _written(fhir, dry_run=dry_run)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vp = sub.add_parser(
        "verify-pill",
        help="check photos against a MedicationRequest (a file is a dry run)",
        description="Check pill photos against an order and print the verdict. "
        + DRY_RUN_NOTE
        + " An id or URL is read from the FHIR server; the result is recorded and the finding "
        "is queued for the EHR. Sample orders: docs/examples/.",
    )
    vp.add_argument(
        "--medication-request",
        required=True,
        metavar="FILE_OR_ID",
        help="a JSON file (MedicationRequest, or a Bundle holding it and its Medication), or a "
        "MedicationRequest id, reference or URL on the FHIR server",
    )
    vp.add_argument(
        "--photo",
        required=True,
        action="append",
        metavar="PHOTO",
        help="a photo of the pill(s): JPEG, PNG, WebP or HEIC; repeat for several photos",
    )
    vp.add_argument("--json", action="store_true", help="print the full result as JSON")
    vp.set_defaults(handler=verify_pill)
