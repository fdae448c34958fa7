"""What a pill verification found, in words and codes a reader of the DetectedIssue can check."""

from __future__ import annotations

from typing import Any

from service.verify.pills.results import (
    Candidate,
    Finding,
    PillResult,
    PillVerification,
    ProductRef,
    Verdict,
)
from service.writeback import codes
from service.writeback.codes import IssueKind
from service.writeback.pill_issues import ISSUES, NDC_SYSTEM, RXNORM_SYSTEM

MAX_CANDIDATES = 3  # per pill, in the evidence text
MAX_EXPECTED = 10  # expected products listed as evidence


def issues_of(v: PillVerification) -> list[IssueKind]:
    """Every issue of a verification, most serious first; MATCH only when nothing else."""
    kinds = [ISSUES[f] for f in v.findings]
    if v.verdict is not Verdict.MATCH or not kinds:
        kinds.append(ISSUES[v.verdict])
    unique = {k.code: k for k in kinds}
    return sorted(unique.values(), key=lambda k: k.rank)


def confidence(v: PillVerification) -> float | None:
    """The model's probability for the verdict it recorded; None where it has none to give."""
    if v.verdict is Verdict.MATCH:
        scores = [p.expected_score for p in v.pills if p.expected_score is not None]
        return _unit(min(scores)) if scores else None
    if v.verdict is Verdict.MISMATCH:
        against: list[float] = []
        for p in v.pills:
            if p.verdict is not Verdict.MISMATCH:
                continue
            if p.expected_score is not None:
                against.append(1.0 - p.expected_score)
            elif p.candidates:
                against.append(p.candidates[0].score)
        return _unit(max(against)) if against else None
    return None


def _unit(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 4)


def product_concept(product: ProductRef, text: str) -> dict[str, Any]:
    """A library product as NDC / RxNorm codings, so auditors can match it to a drug database."""
    coding = [{"system": NDC_SYSTEM, "code": ndc} for ndc in product.ndcs]
    if product.rxcui:
        coding.append({"system": RXNORM_SYSTEM, "code": product.rxcui})
    out: dict[str, Any] = {"text": text}
    if coding:
        out["coding"] = coding
    return out


def _name(product: ProductRef) -> str:
    return product.name or f"library product {product.id}"


def _candidate_text(c: Candidate) -> str:
    # No band here: a candidate's band is about that product, and read next to a MISMATCH a
    # "MATCH band" looks like a match of the order.
    return f"{_name(c.product)} (score {c.score:.2f})"


def _pill_name(p: PillResult) -> str:
    return f"pill {p.index + 1} (photo {p.photo_index + 1})"


def pill_text(p: PillResult) -> str:
    """One line per pill: its verdict, the products it looks like, the ordered drug's score."""
    parts = [f"Pill {p.index + 1} (photo {p.photo_index + 1}): {p.verdict.value}"]
    if p.candidates:
        listed = "; ".join(_candidate_text(c) for c in p.candidates[:MAX_CANDIDATES])
        parts.append(f"closest products: {listed}")
    if p.expected_score is not None:
        parts.append(f"best score for a prescribed product {p.expected_score:.2f}")
    return ". ".join(parts) + "."


def evidence(v: PillVerification, issues: list[IssueKind]) -> list[dict[str, Any]]:
    """DetectedIssue.evidence: the issue codes, then each pill, then the expected products."""
    out: list[dict[str, Any]] = [{"code": [k.concept() for k in issues]}]
    for p in v.pills:
        concepts = [ISSUES[p.verdict].concept()]
        if p.candidates:
            concepts.append(product_concept(p.candidates[0].product, pill_text(p)))
        else:
            concepts[0]["text"] = pill_text(p)
        item: dict[str, Any] = {"code": concepts}
        if p.candidates:
            score = _unit(p.candidates[0].score)
            item["extension"] = [{"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": score}]
        out.append(item)
    if v.expected:
        out.append(
            {
                "code": [
                    product_concept(e, f"prescribed product: {_name(e)}")
                    for e in v.expected[:MAX_EXPECTED]
                ]
            }
        )
    return out


def _wrong_pill(p: PillResult, med: str, ordered_ids: set[str]) -> str:
    top = p.candidates[0] if p.candidates else None
    ordered = ""
    if p.expected_score is not None:
        ordered = f" (score for the ordered medication {p.expected_score:.2f})"
    head = f"Wrong pill: the order is for {med}, but {_pill_name(p)}"
    if top is None or top.product.id in ordered_ids:
        return f"{head} does not match it{ordered}."
    return f"{head} was identified as {_candidate_text(top)}{ordered}."


def _unconfirmed_pill(p: PillResult, med: str, ordered_ids: set[str]) -> str:
    score = "" if p.expected_score is None else f" with score {p.expected_score:.2f}"
    top = p.candidates[0] if p.candidates else None
    other = ""
    if top is not None and top.product.id not in ordered_ids:
        other = f"; it looks most like {_candidate_text(top)}"
    return (
        f"Not confirmed: the order is for {med}, and {_pill_name(p)} matched it only{score}, "
        f"too low to confirm{other}; needs pharmacist review."
    )


def plain_detail(v: PillVerification, issues: list[IssueKind]) -> str:
    """DetectedIssue.detail: what is wrong, in words a nurse reads at the bedside (ordered X,
    identified as Y with score s); never a band name, which reads as a verdict."""
    med = v.medication_text or "the prescribed medication"
    ordered_ids = {e.id for e in v.expected}
    wrong = [_wrong_pill(p, med, ordered_ids) for p in v.pills if p.verdict is Verdict.MISMATCH]
    unsure = [
        _unconfirmed_pill(p, med, ordered_ids) for p in v.pills if p.verdict is Verdict.UNCERTAIN
    ]
    dose = v.count_expected if v.count_expected is not None else "a different number of"
    sentences: dict[str, str] = {
        Finding.PATIENT_MISMATCH: "The patient given for this check is not the order's patient.",
        Verdict.MISMATCH: " ".join(wrong)
        or f"Wrong pill: a pill in the photo does not match {med}.",
        Finding.ORDER_INACTIVE: f"The order is not active (status: {v.order_status or 'unknown'}).",
        Finding.COUNT_MISMATCH: f"Wrong number of pills: the order's dose is {dose} pill(s) of "
        f"{med}, but the photo shows {len(v.pills)}.",
        Verdict.UNCERTAIN: " ".join(unsure)
        or f"Verity could not confirm that the pill is {med}: needs pharmacist review.",
        Verdict.NOT_IN_LIBRARY: f"Verity has no reference for {med}, "
        "so the pill could not be checked.",
        Verdict.NO_PILL_FOUND: "No pill was found in the photo, so nothing was checked.",
        Verdict.MATCH: f"The pill(s) in the photo match {med}.",
    }
    return " ".join(sentences[k.code] for k in issues)
