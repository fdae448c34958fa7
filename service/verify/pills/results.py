"""The outcome of a pill verification: what the API returns, the audit row stores and the
write-back turns into FHIR. Plain data; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from service.verify.common import ModelInfo

Band = Literal["MATCH", "UNCERTAIN", "MISMATCH"]  # the band of one calibrated score


class Verdict(StrEnum):
    MATCH = "MATCH"
    MISMATCH = "MISMATCH"
    UNCERTAIN = "UNCERTAIN"
    NOT_IN_LIBRARY = "NOT_IN_LIBRARY"
    NO_PILL_FOUND = "NO_PILL_FOUND"


class Finding(StrEnum):
    """Problems with the order or the dispense itself, independent of pill identity."""

    ORDER_INACTIVE = "ORDER_INACTIVE"
    PATIENT_MISMATCH = "PATIENT_MISMATCH"
    COUNT_MISMATCH = "COUNT_MISMATCH"


@dataclass(frozen=True)
class ProductRef:
    """A library product as named in results (never patient data)."""

    id: str
    name: str | None = None
    ndcs: tuple[str, ...] = ()
    rxcui: str | None = None
    # catalog.clinical_drug_key (ingredients + strengths); equal keys are interchangeable
    clinical_drug: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One library product ranked for a pill, with the evidence behind its score."""

    product: ProductRef
    score: float  # calibrated probability that the pill is this product's clinical drug
    band: Band
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def product_id(self) -> str:
        return self.product.id


@dataclass(frozen=True)
class PillResult:
    index: int
    verdict: Verdict
    bbox: tuple[int, int, int, int]  # x, y, width, height in the photo
    photo_index: int = 0
    candidates: tuple[Candidate, ...] = ()  # best first
    expected_score: float | None = None  # best score among the expected products


@dataclass
class PillVerification:
    id: str  # UUID; also the stable identifier of everything written for it
    created_at: datetime
    order_ref: str  # e.g. "MedicationRequest/123"
    patient_ref: str | None
    dispense_ref: str | None
    order_status: str | None
    medication_text: str | None
    expected: list[ProductRef]
    verdict: Verdict
    pills: list[PillResult]
    findings: list[Finding] = field(default_factory=list)
    count_expected: int | None = None
    photo_sha256: list[str] = field(default_factory=list)
    models: list[ModelInfo] = field(default_factory=list)
    caller: str | None = None  # client id of the caller, for Provenance.onBehalfOf

    @property
    def needs_attention(self) -> bool:
        """Anything other than a clean MATCH is a finding for the EHR."""
        return self.verdict is not Verdict.MATCH or bool(self.findings)
