"""Pure decision logic: open-set scores, clinical-drug grouping, margins and bands."""

from __future__ import annotations

import numpy as np

from service.config import DecisionSettings
from service.verify.pills.catalog import clinical_drug_key, parse_label_ingredients
from service.verify.pills.features import imprint_similarity, levenshtein
from service.verify.pills.measurements import QueryPill, ReferenceView
from service.verify.pills.orders import OrderedDrug, OrderInfo
from service.verify.pills.ranking import FusionModel, interchangeable_group, rank
from service.verify.pills.results import Finding, PillResult, ProductRef, Verdict
from service.verify.pills.verdicts import findings, overall, pill_verdict

DECISION = DecisionSettings(match_threshold=0.6, review_threshold=0.2)
FUSION = FusionModel(weights=(20.0, 0.0, -0.05, -3.0, 2.0, 0.0), bias=-16.0)


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=16).astype(np.float32)
    return v / np.linalg.norm(v)


def _view(pid: str, emb: np.ndarray, imprint: str | None = None) -> ReferenceView:
    feats = {"aspect": 1.0, "colours": [{"L": 80.0, "a": 0.0, "b": 10.0, "share": 1.0}]}
    return ReferenceView(pid, f"{pid}/ref_1", "front/rot0", emb, feats, imprint)


def _query(emb: np.ndarray, imprint: str | None = None) -> QueryPill:
    feats = {"aspect": 1.0, "colours": [{"L": 80.0, "a": 0.0, "b": 10.0, "share": 1.0}]}
    return QueryPill(emb[None, :], feats, imprint, 0.9 if imprint else 0.0)


def _product(pid: str, name: str | None, strength: str | None) -> ProductRef:
    key = clinical_drug_key(parse_label_ingredients(name, strength)) if name and strength else None
    return ProductRef(pid, name, clinical_drug=key)


PRODUCTS = {
    p: _product(p, n, s)
    for p, n, s in [
        ("A", "METFORMIN", "METFORMIN 500 mg"),
        ("A2", "METFORMIN", "METFORMIN 500 mg"),
        ("B", "METFORMIN", "METFORMIN 1000 mg"),
        ("C", None, None),
        ("D", None, None),
    ]
}


def test_products_without_a_clinical_drug_are_each_their_own_group() -> None:
    group = {p: interchangeable_group(ref) for p, ref in PRODUCTS.items()}
    assert group["A"] == group["A2"] != group["B"]
    assert group["C"] != group["D"]
    # a product id never collides with a clinical-drug key of the same text
    assert interchangeable_group(ProductRef("X", clinical_drug="X")) != interchangeable_group(
        ProductRef("X")
    )


def test_clear_winner_is_match_and_others_are_not() -> None:
    refs = [_view(p, _unit(i)) for i, p in enumerate(["A", "B", "C", "D"])]
    ranked = rank(_query(_unit(0)), refs, PRODUCTS, DECISION, FUSION)
    assert ranked[0].product_id == "A" and ranked[0].band == "MATCH"
    assert all(c.band != "MATCH" for c in ranked[1:])
    assert {"emb_sim", "colour_de", "shape_dlog", "imprint", "logit"} <= set(ranked[0].evidence)
    assert ranked[0].product.name == "METFORMIN"  # candidates carry the product, not its id
    assert pill_verdict(ranked, {"B"}, DECISION)[0] is not Verdict.MATCH
    assert pill_verdict(ranked, {"A"}, DECISION)[0] is Verdict.MATCH


def test_same_clinical_drug_shares_the_score() -> None:
    refs = [_view("A", _unit(0)), _view("A2", _unit(0)), _view("B", _unit(2))]
    ranked = rank(_query(_unit(0)), refs, PRODUCTS, DECISION, FUSION)
    scores = {c.product_id: c.score for c in ranked}
    assert scores["A"] == scores["A2"] and scores["A"] >= DECISION.match_threshold
    assert pill_verdict(ranked, {"A2"}, DECISION) == (Verdict.MATCH, scores["A2"])


def test_near_tie_between_different_drugs_is_never_match() -> None:
    refs = [_view("C", _unit(0)), _view("D", _unit(0))]
    ranked = rank(_query(_unit(0)), refs, PRODUCTS, DECISION, FUSION)
    assert all(c.band != "MATCH" for c in ranked)


def test_unknown_pill_matches_nothing() -> None:
    refs = [_view(p, _unit(i)) for i, p in enumerate(["A", "B", "C"])]
    ranked = rank(_query(_unit(99)), refs, PRODUCTS, DECISION, FUSION)
    assert all(c.band != "MATCH" for c in ranked)
    assert pill_verdict(ranked, {"A"}, DECISION)[0] is not Verdict.MATCH
    assert pill_verdict(ranked, set(), DECISION) == (Verdict.NOT_IN_LIBRARY, None)


def test_imprint_evidence_separates_lookalikes() -> None:
    refs = [_view("C", _unit(0), "93 311"), _view("D", _unit(0), "APO 25")]
    ranked = rank(_query(_unit(0), "93 311"), refs, PRODUCTS, DECISION, FUSION)
    assert ranked[0].product_id == "C"
    assert ranked[0].evidence["imprint"] > 0 > ranked[1].evidence["imprint"]


def test_imprint_similarity() -> None:
    assert levenshtein("4222", "4223") == 1
    assert imprint_similarity("93 311", "311 93") == 1.0
    assert imprint_similarity("APO", "CIP 250") < 0.3


def test_only_the_most_probable_drug_can_match_even_at_a_low_threshold() -> None:
    """Two look-alike drugs near a tie: with a threshold under one half both could clear it."""
    low = DecisionSettings(match_threshold=0.3, review_threshold=0.1)
    refs = [_view("C", _unit(0)), _view("D", 0.999 * _unit(0) + 0.045 * _unit(5))]
    ranked = rank(_query(_unit(0)), refs, PRODUCTS, low, FUSION)
    assert [c.product_id for c in ranked] == ["C", "D"]
    assert ranked[1].score >= low.match_threshold  # would be a MATCH on its score alone
    assert ranked[0].band == "MATCH" and ranked[1].band == "UNCERTAIN"


def _pill(verdict: Verdict) -> PillResult:
    return PillResult(index=0, verdict=verdict, bbox=(0, 0, 1, 1))


def test_overall_verdict_is_the_worst_pill() -> None:
    assert overall([]) is Verdict.NO_PILL_FOUND
    assert overall([_pill(Verdict.MATCH), _pill(Verdict.UNCERTAIN)]) is Verdict.UNCERTAIN
    assert overall([_pill(Verdict.MISMATCH), _pill(Verdict.NOT_IN_LIBRARY)]) is Verdict.MISMATCH


def test_findings_about_the_order_and_the_dispense() -> None:
    order = OrderInfo("active", "Patient/1", OrderedDrug(), dose_count=1)
    assert findings(order, "Patient/1", 1) == []
    assert findings(order, None, 0) == []  # no pill found: no count to compare
    stopped = OrderInfo("stopped", "Patient/1", OrderedDrug(), dose_count=1)
    assert findings(stopped, "Patient/2", 2) == [
        Finding.ORDER_INACTIVE,
        Finding.PATIENT_MISMATCH,
        Finding.COUNT_MISMATCH,
    ]
