"""Fused, calibrated ranking of the library products for one pill, and the score bands.

Open-set identification: each product gets a logit from a small logistic model over its
evidence; the probability that the pill is product j is exp(l_j) / (1 + sum_k exp(l_k)) (the 1
is "none of the library"), summed over products of the same clinical drug. A prescribed product
is a MATCH only when its clinical drug is the most probable one and that probability clears
`match_threshold`: a close runner-up takes probability away, and at most one clinical drug
per pill can be a MATCH (whatever the threshold).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from service.config import DecisionSettings
from service.verify.pills.features import FEATURES, product_features
from service.verify.pills.measurements import QueryPill, ReferenceView
from service.verify.pills.results import Band, Candidate, ProductRef


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


def interchangeable_group(product: ProductRef) -> tuple[str, str]:
    """Products of one clinical drug share a group; a product with none is a group alone."""
    if product.clinical_drug:
        return ("drug", product.clinical_drug)
    return ("product", product.id)


def rank(
    query: QueryPill,
    references: Iterable[ReferenceView],
    products: Mapping[str, ProductRef],
    decision: DecisionSettings,
    fusion: FusionModel = DEFAULT_FUSION,
) -> list[Candidate]:
    """Every product with reference views, best first, with a calibrated score, band and
    evidence (a product missing from `products` is named by its id alone)."""
    evidence = product_features(query, references)
    if not evidence:
        return []
    ids = list(evidence)
    refs = {p: products.get(p) or ProductRef(p) for p in ids}
    logits = np.array([fusion.logit(evidence[p]) for p in ids], dtype=np.float64)
    top = max(float(logits.max()), 0.0)
    weights = np.exp(logits - top)
    p_product = weights / (np.exp(-top) + weights.sum())
    group_of = {p: interchangeable_group(refs[p]) for p in ids}
    p_group: dict[tuple[str, str], float] = defaultdict(float)
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
        out.append(Candidate(refs[p], round(score, 6), band, ev))
    out.sort(key=lambda c: (-c.score, -c.evidence["p_product"]))
    return out


def unsure(ranked: Sequence[Candidate], margin: float) -> bool:
    """Whether the next embedder of a cascade should look: the best score is under `margin`."""
    return not ranked or ranked[0].score < margin
