"""Fused, calibrated identification of a pill against the whole library, and the verdict.

Open-set identification: each product gets a logit from a small logistic model over its
evidence; the probability that the pill is product j is exp(l_j) / (1 + sum_k exp(l_k)) (the 1
is "none of the library"), summed over products of the same clinical drug. A prescribed product
is a MATCH only when its clinical drug is the most probable one and that probability clears
`match_threshold`: a close runner-up takes probability away, and at most one clinical drug
per pill can be a MATCH (whatever the threshold).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from service.config import DecisionSettings
from service.verify.evidence import FEATURES, product_evidence
from service.verify.records import Band, Candidate, ProductInfo, QueryPill, ReferenceView, Verdict


@dataclass(frozen=True)
class FusionModel:
    """Logistic weights over `FEATURES` (+ bias); loaded from a JSON of coefficients."""

    weights: tuple[float, ...]
    bias: float
    version: str = "fusion@manual"

    def logit(self, evidence: Mapping[str, float]) -> float:
        return self.bias + sum(
            w * float(evidence[f]) for w, f in zip(self.weights, FEATURES, strict=True)
        )


DEFAULT_FUSION = FusionModel(weights=(8.0, 1.0, -0.08, -4.0, 3.0, 0.0), bias=-8.0)


def band_for(score: float, decision: DecisionSettings) -> Band:
    """Score bands from configuration."""
    if score >= decision.match_threshold:
        return "MATCH"
    if score >= decision.review_threshold:
        return "UNCERTAIN"
    return "MISMATCH"


def rank(
    query: QueryPill,
    references: Iterable[ReferenceView],
    products: Mapping[str, ProductInfo],
    decision: DecisionSettings,
    fusion: FusionModel = DEFAULT_FUSION,
) -> list[Candidate]:
    """Every enrolled product, best first, with a calibrated score, band and evidence."""
    evidence = product_evidence(query, references)
    if not evidence:
        return []
    ids = list(evidence)
    logits = np.array([fusion.logit(evidence[p]) for p in ids], dtype=np.float64)
    top = max(float(logits.max()), 0.0)
    weights = np.exp(logits - top)
    p_product = weights / (np.exp(-top) + weights.sum())
    group_of = {p: (products[p].clinical_drug if p in products else f"product:{p}") for p in ids}
    p_group: dict[str, float] = defaultdict(float)
    for p, prob in zip(ids, p_product, strict=True):
        p_group[group_of[p]] += float(prob)
    best_group = max(p_group, key=lambda g: p_group[g])
    out = []
    for p, logit, prob in zip(ids, logits, p_product, strict=True):
        score = p_group[group_of[p]]
        band = band_for(score, decision)
        if band == "MATCH" and group_of[p] != best_group:
            band = "UNCERTAIN"  # a pill is at most one clinical drug: only the best can match
        ev = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in evidence[p].items()}
        ev.update(
            logit=round(float(logit), 3), p_product=round(float(prob), 4), fusion=fusion.version
        )
        out.append(Candidate(p, round(score, 6), band, ev))
    out.sort(key=lambda c: (-c.score, -c.evidence["p_product"]))
    return out


def verify(
    ranked: list[Candidate],
    prescribed: str,
    products: Mapping[str, ProductInfo],
    decision: DecisionSettings,
) -> Verdict:
    """Verdict for the prescribed product from an existing ranking (no re-scoring)."""
    top = ranked[:5]
    mine = next((c for c in ranked if c.product_id == prescribed), None)
    if mine is None:
        return Verdict(prescribed, "UNCERTAIN", 0.0, top, "prescribed product not in library")
    winner = ranked[0]
    same = (
        products[winner.product_id].clinical_drug == products[prescribed].clinical_drug
        if winner.product_id in products and prescribed in products
        else winner.product_id == prescribed
    )
    if mine.band == "MATCH":
        reason = "prescribed clinical drug is the confident best match"
    elif same:
        reason = "prescribed product ranks first but without enough margin or similarity"
    else:
        reason = f"best match is {winner.product_id} (score {winner.score:.2f})"
    return Verdict(prescribed, mine.band, mine.score, top, reason)
