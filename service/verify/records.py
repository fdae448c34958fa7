"""The records the decision logic works on; plain, JSON-friendly, no I/O.

The store keeps `ReferenceView`s (embedding in a pgvector column, `features` as JSONB,
`imprint_read` as text) and hands them back to `rank`; the engine builds `QueryPill`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from service.verify.catalog import clinical_drug_key, parse_label_ingredients

Band = Literal["MATCH", "UNCERTAIN", "MISMATCH"]


@dataclass(frozen=True)
class ReferenceView:
    """One enrolled view of a product (one reference image at one rotation)."""

    product_id: str
    image_id: str
    view: str
    embedding: np.ndarray  # unit-length float32
    features: dict[str, Any]
    imprint_read: str | None
    model_version: str = ""


@dataclass(frozen=True)
class QueryPill:
    """Everything measured on one pill of a query photo."""

    embeddings: np.ndarray  # (k, d) unit rows: the upright crop and its 180-degree turn
    features: dict[str, Any]
    imprint_read: str | None
    imprint_confidence: float
    model_version: str = ""
    index: int = 0


@dataclass(frozen=True)
class ProductInfo:
    """What the ranker knows about a product; equal `drug_key` means interchangeable."""

    product_id: str
    drug_key: str | None = None  # catalog.clinical_drug_key: ingredients + strengths

    @classmethod
    def from_label(cls, product_id: str, name: str | None, strength: str | None) -> ProductInfo:
        """From label text: the same non-blank ingredient(s) and strength(s) is one drug."""
        if not (name and name.strip() and strength and strength.strip()):
            return cls(product_id)
        return cls(product_id, clinical_drug_key(parse_label_ingredients(name, strength)))

    @property
    def clinical_drug(self) -> str:
        """The grouping key: the clinical drug when known, else the product itself."""
        return f"drug:{self.drug_key}" if self.drug_key else f"product:{self.product_id}"


@dataclass
class Candidate:
    """One library product ranked for a query pill, with the evidence behind its score."""

    product_id: str
    score: float  # calibrated probability that the pill is this product's clinical drug
    band: Band
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """Answer to 'is this pill the prescribed product?' plus the ranking that decided it."""

    prescribed: str
    band: Band
    score: float
    top: list[Candidate]
    reason: str
