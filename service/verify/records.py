"""The records the decision logic works on; plain, JSON-friendly, no I/O.

The store keeps `ReferenceView`s (embedding in a pgvector column, `features` as JSONB,
`imprint_read` as text) and hands them back to `rank`; the engine builds `QueryPill`s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

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
    """What the library knows about a product; equal `clinical_drug` means interchangeable."""

    product_id: str
    name: str | None = None
    strength: str | None = None

    @property
    def clinical_drug(self) -> str:
        """Same non-blank ingredient(s) + strength(s) = same clinical drug; else the product."""
        if self.name and self.name.strip() and self.strength and self.strength.strip():
            norm = re.sub(r"\s+", " ", f"{self.name}|{self.strength}".upper()).strip()
            return f"drug:{norm}"
        return f"product:{self.product_id}"


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
