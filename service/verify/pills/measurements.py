"""The measurements the decision logic works on; plain, JSON-friendly, no I/O.

The store keeps `ReferenceView`s (embedding in a pgvector column, `features` as JSONB,
`imprint_read` as text) and hands them back to `rank`; the engine builds `QueryPill`s.
What the decisions produce is in `results`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


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
