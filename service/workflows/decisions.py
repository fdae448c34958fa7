"""Closing the loop: a person's decision on a verification that needed attention, kept in
Verity's audit and written to the EHR (DetectedIssue.mitigation + a Provenance naming the
person) through the outbox, in one transaction. Domain-free: pills and imaging alike."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from service.config import Settings
from service.errors import DecisionExists, DecisionNotNeeded, RequestInvalid
from service.store import decisions, outbox
from service.store import verifications as audit
from service.store.pool import Connect
from service.workflows.record import Caller
from service.writeback import mitigation as mit

ACTIONS = ("confirmed", "removed", "returned", "other")
MAX_REASON = 500
# The EHR's words for each action (DetectedIssue.mitigation.action.text), per domain.
_TEXT = {
    "pill": {"confirmed": "Confirmed correct", "removed": "Wrong product removed",
             "returned": "Sent back to pharmacy"},
    "imaging": {"confirmed": "Confirmed correct", "removed": "Wrong images removed",
                "returned": "Sent back for correction"},
}  # fmt: skip


@dataclass(frozen=True)
class Decision:
    action: str  # one of ACTIONS; "other" needs a reason
    reason: str | None
    author_ref: str  # the person: fhirUser from the SMART launch
    author_display: str | None
    caller: Caller


@dataclass(frozen=True)
class DecisionView:
    id: str
    verification_id: str
    created_at: datetime
    action: str
    code: str
    display: str
    reason: str | None
    author_ref: str
    author_display: str | None
    delivery: str  # queued | delivered | dead | not_written


def _code(kind: str, action: str) -> tuple[str, str]:
    if action == "confirmed":
        return mit.CONFIRMED_SUPPLY if kind == "pill" else mit.CONFIRMED_THERAPY
    return mit.OTHER_ACTION


def _view(row: decisions.DecisionRow, kind: str) -> DecisionView:
    delivery = "queued" if row.delivery == "pending" else row.delivery
    display = _TEXT.get(kind, _TEXT["pill"]).get(row.action) or row.reason or row.action
    return DecisionView(
        row.id, row.verification_id, row.created_at, row.action, row.code, display,
        row.reason, row.author_ref, row.author_display, delivery,
    )  # fmt: skip


def check(decision: Decision) -> Decision:
    """Refuse what cannot be recorded: an unknown action, "other" without a reason, no author."""
    if decision.action not in ACTIONS:
        raise RequestInvalid(f"decision must be one of {', '.join(ACTIONS)}")
    reason = (decision.reason or "").strip() or None
    if decision.action == "other" and not reason:
        raise RequestInvalid("say what was done: a reason is required for 'other'")
    if reason and len(reason) > MAX_REASON:
        raise RequestInvalid(f"the reason is longer than {MAX_REASON} characters")
    if not decision.author_ref:
        raise RequestInvalid("a decision needs the person who made it (fhirUser)")
    return Decision(decision.action, reason, decision.author_ref, decision.author_display,
                    decision.caller)  # fmt: skip


async def record_decision(
    connect: Connect, settings: Settings, verification_id: str, decision: Decision
) -> tuple[DecisionView, bool]:
    """Keep the decision and queue its EHR write in one transaction; the same decision sent
    again returns the first, a different one is refused (the first decision stands)."""
    decision = check(decision)
    async with connect() as conn:
        row = await audit.get(conn, verification_id)
        earlier = await decisions.get(conn, verification_id)
        if earlier is not None:
            return _same_or_refuse(earlier, decision, row.kind)
        if not row.result.get("needs_attention"):
            raise DecisionNotNeeded("this verification was clean: there is nothing to decide")
        decision_id = str(uuid.uuid4())
        code = _code(row.kind, decision.action)
        text = _TEXT.get(row.kind, _TEXT["pill"]).get(decision.action) or decision.reason or ""
        if decision.reason and decision.action != "other":
            text = f"{text}: {decision.reason}"
        writes = await outbox.for_verification(conn, verification_id)
        first = writes[0].payload if writes else None  # the verification's own write
        write = (
            mit.mitigation_write(first, mit.Mitigation(
                decision_id, verification_id, code, text, decision.author_ref,
                decision.author_display, datetime.now(UTC), row.patient_ref,
            ), settings.writeback)
            if first is not None else None
        )  # fmt: skip
        try:
            async with conn.transaction():
                outbox_id = None
                if write is not None:
                    outbox_id = await outbox.enqueue(
                        conn, resource_type=write.resource_type,
                        identifier_system=write.identifier_system,
                        identifier_value=write.identifier_value, payload=write.bundle,
                        verification_id=verification_id,
                    )  # fmt: skip
                inserted = await decisions.insert(conn, decisions.NewDecision(
                    decision_id, verification_id, decision.action, code[0], decision.reason,
                    decision.author_ref, decision.author_display, decision.caller.client_id,
                    outbox_id,
                ))  # fmt: skip
                if not inserted:
                    raise _Lost()  # rolls back this decision's write
        except _Lost:  # a concurrent decision won the race: it stands
            winner = await decisions.get(conn, verification_id)
            assert winner is not None
            return _same_or_refuse(winner, decision, row.kind)
        stored = await decisions.get(conn, verification_id)
    assert stored is not None
    return _view(stored, row.kind), True


class _Lost(Exception):
    """Rolls back a decision that lost the race to another."""


def _same_or_refuse(
    earlier: decisions.DecisionRow, decision: Decision, kind: str
) -> tuple[DecisionView, bool]:
    if (earlier.action, earlier.author_ref, earlier.reason) == (
        decision.action, decision.author_ref, decision.reason,
    ):  # fmt: skip
        return _view(earlier, kind), False
    who = earlier.author_display or earlier.author_ref
    raise DecisionExists(f"already decided ({earlier.action}) by {who}")


async def decision_for(connect: Connect, verification_id: str) -> DecisionView | None:
    async with connect() as conn:
        row = await decisions.get(conn, verification_id)
        if row is None:
            return None
        kind = (await audit.get(conn, verification_id)).kind
    return _view(row, kind)
