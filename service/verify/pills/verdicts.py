"""Judging identified pills against an order: each pill's verdict, the overall verdict and the
findings about the order or the dispense. Pure; no I/O (the workflow fetches and records)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from service.config import DecisionSettings
from service.verify.pills.measurements import QueryPill
from service.verify.pills.orders import OrderInfo
from service.verify.pills.ranking import band_for
from service.verify.pills.results import Candidate, Finding, PillResult, Verdict

_SEVERITY = [Verdict.MATCH, Verdict.NOT_IN_LIBRARY, Verdict.UNCERTAIN, Verdict.MISMATCH]
SHOWN_CANDIDATES = 3  # per pill, in the result


def pill_verdict(
    ranked: Sequence[Candidate], recognisable: Collection[str], decision: DecisionSettings
) -> tuple[Verdict, float | None]:
    """MATCH / UNCERTAIN / MISMATCH from the calibrated probability of the ordered clinical
    drug (scores are already summed over products of one clinical drug); NOT_IN_LIBRARY when
    no expected product has reference views (it cannot be recognised, so it is no MISMATCH)."""
    if not recognisable:
        return Verdict.NOT_IN_LIBRARY, None
    score = max((c.score for c in ranked if c.product_id in recognisable), default=0.0)
    return Verdict(band_for(score, decision)), score


def bbox(value: object) -> tuple[int, int, int, int]:
    """x, y, width, height as the engine measured it; zeros when it gave none."""
    if isinstance(value, list | tuple) and len(value) == 4:
        x, y, w, h = (int(v) for v in value)
        return x, y, w, h
    return 0, 0, 0, 0


def pill_result(
    index: int,
    photo_index: int,
    pill: QueryPill,
    ranked: Sequence[Candidate],
    recognisable: Collection[str],
    decision: DecisionSettings,
) -> PillResult:
    """One pill of the dispense, judged against the order's recognisable products."""
    verdict, score = pill_verdict(ranked, recognisable, decision)
    return PillResult(
        index=index,
        verdict=verdict,
        bbox=bbox(pill.features.get("bbox")),
        photo_index=photo_index,
        candidates=tuple(ranked[:SHOWN_CANDIDATES]),
        expected_score=score,
    )


def overall(pills: Sequence[PillResult]) -> Verdict:
    """The worst per-pill verdict; no pill at all is NO_PILL_FOUND."""
    if not pills:
        return Verdict.NO_PILL_FOUND
    return max((p.verdict for p in pills), key=_SEVERITY.index)


def findings(order: OrderInfo, patient_ref: str | None, pill_count: int) -> list[Finding]:
    """What is wrong with the order or the dispense, whoever the pills are."""
    out = []
    if not order.active:
        out.append(Finding.ORDER_INACTIVE)
    if patient_ref and order.patient_ref and patient_ref != order.patient_ref:
        out.append(Finding.PATIENT_MISMATCH)
    if pill_count and order.dose_count is not None and pill_count != order.dose_count:
        out.append(Finding.COUNT_MISMATCH)
    return out
