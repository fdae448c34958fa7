"""Everything about one verification for a reviewer: the verdict and its evidence, the exact
FHIR Bundles queued for the EHR with their delivery state, the person's decision, the caller.
Generic over pill and imaging results: what is not recognised is still shown, as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.store import decisions, outbox
from service.store import verifications as audit
from service.store.pool import Connect


@dataclass(frozen=True)
class PillLine:
    """One pill found in a photo: what Verity identified it as, and how sure it was."""

    number: int
    photo: int
    verdict: str
    identified_as: str | None
    score: float | None
    band: str | None


@dataclass(frozen=True)
class CheckLine:
    """One imaging check: the DICOM value against the EHR's."""

    code: str
    outcome: str
    summary: str
    dicom: str
    expected: str


@dataclass(frozen=True)
class WriteEntry:
    resource_type: str
    method: str
    url: str


@dataclass(frozen=True)
class WriteView:
    """One outbox row: what was (or will be) written to the EHR, and where it stands."""

    purpose: str  # "verification" or "decision"
    row: outbox.OutboxRow
    entries: list[WriteEntry]
    bundle_json: str


@dataclass(frozen=True)
class AuditDetail:
    verification: audit.VerificationRow
    findings: list[str]
    needs_attention: bool
    facts: list[tuple[str, str]]  # the result's plain top-level values
    pills: list[PillLine]
    checks: list[CheckLine]
    fhir_status: str  # what the result says about the EHR write (queued, not_written, dry_run)
    writes: list[WriteView]
    decision: decisions.DecisionRow | None  # with the delivery state of its EHR write
    raw_json: str


# Shown elsewhere on the page, or too big for a list of facts.
_NOT_FACTS = {"id", "verdict", "findings", "needs_attention", "pills", "checks", "fhir",
              "created_at", "patient_ref", "order_ref", "caller"}  # fmt: skip


async def detail(connect: Connect, verification_id: str) -> AuditDetail:
    """One verification as recorded; UnknownVerification (404) when there is none."""
    async with connect() as conn:
        v = await audit.get(conn, verification_id)
        rows = await outbox.for_verification(conn, v.id)
        decision = await decisions.get(conn, v.id)
    result = v.result
    decision_outbox = decision.outbox_id if decision else None
    return AuditDetail(
        verification=v,
        findings=[str(f) for f in result.get("findings") or ()],
        needs_attention=bool(result.get("needs_attention", v.verdict not in ("MATCH", "PASSED"))),
        facts=[(k, _plain(x)) for k, x in result.items() if k not in _NOT_FACTS and _scalar(x)],
        pills=[_pill(p) for p in result.get("pills") or () if isinstance(p, dict)],
        checks=[_check(c) for c in result.get("checks") or () if isinstance(c, dict)],
        fhir_status=str((result.get("fhir") or {}).get("status") or "not_written"),
        writes=[
            _write(r, "decision" if r.id == decision_outbox else "verification") for r in rows
        ],  # fmt: skip
        decision=decision,
        raw_json=json.dumps(result, indent=2, sort_keys=True),
    )


def _scalar(value: Any) -> bool:
    return value is not None and (
        isinstance(value, str | int | float | bool)
        or (isinstance(value, list) and all(isinstance(x, str | int | float) for x in value))
    )


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(x) for x in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _pill(p: dict[str, Any]) -> PillLine:
    candidates = p.get("candidates") or []
    best = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    product = best.get("product") or {}
    name = product.get("name") or product.get("id")
    score = best.get("score")
    return PillLine(
        number=int(p.get("index", 0)) + 1, photo=int(p.get("photo_index", 0)) + 1,
        verdict=str(p.get("verdict", "")), identified_as=str(name) if name else None,
        score=float(score) if isinstance(score, int | float) else None, band=best.get("band"),
    )  # fmt: skip


def _check(c: dict[str, Any]) -> CheckLine:
    return CheckLine(
        code=str(c.get("code", "")), outcome=str(c.get("outcome", "")),
        summary=str(c.get("summary", "")), dicom=_plain(list(c.get("dicom") or ())),
        expected=_plain(list(c.get("expected") or ())),
    )  # fmt: skip


def _write(row: outbox.OutboxRow, purpose: str) -> WriteView:
    entries = []
    for e in row.payload.get("entry") or ():
        resource = e.get("resource") or {}
        request = e.get("request") or {}
        entries.append(WriteEntry(
            str(resource.get("resourceType", "?")), str(request.get("method", "")),
            str(request.get("url", "")),
        ))  # fmt: skip
    return WriteView(purpose, row, entries, json.dumps(row.payload, indent=2, sort_keys=True))
