"""Request and response bodies of the public API (pydantic; shown in OpenAPI)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, get_type_hints

from pydantic import BaseModel, Field, create_model

from service.store.products import Product
from service.verify.pills.catalog import Ingredient
from service.verify.pills.results import PillVerification


class IngredientIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    strength: str | None = Field(None, max_length=100, examples=["500 mg"])


class ProductIn(BaseModel):
    """A library product; `id` is chosen by the caller and stable."""

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    name: str | None = Field(None, max_length=300)
    ndcs: list[str] = Field(default_factory=list, max_length=50)
    rxcui: str | None = Field(None, max_length=20, pattern=r"^\d+$")
    ingredients: list[IngredientIn] = Field(default_factory=list, max_length=20)
    dose_form: str | None = Field(None, max_length=50, examples=["tablet"])
    imprint: str | None = Field(None, max_length=100)
    colors: list[str] = Field(default_factory=list, max_length=10)
    shape: str | None = Field(None, max_length=50)
    size_mm: float | None = Field(None, gt=0, lt=100)
    labeler: str | None = Field(None, max_length=200)

    def to_product(self) -> Product:
        data = self.model_dump()
        data["ingredients"] = [Ingredient(i.name, i.strength) for i in self.ingredients]
        data["imprint_source"] = "label" if self.imprint else None
        return Product(**data)


class ProductOut(ProductIn):
    imprint_source: str | None = None
    clinical_drug: str | None = None
    images: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, p: Product, images: list[dict[str, Any]] | None = None) -> ProductOut:
        return cls(
            id=p.id, name=p.name, ndcs=p.ndcs, rxcui=p.rxcui,
            ingredients=[IngredientIn(name=i.name, strength=i.strength) for i in p.ingredients],
            dose_form=p.dose_form, imprint=p.imprint, imprint_source=p.imprint_source,
            colors=p.colors, shape=p.shape, size_mm=p.size_mm, labeler=p.labeler,
            clinical_drug=p.clinical_drug, images=images,
        )  # fmt: skip


class EnrolledOut(BaseModel):
    image_id: int
    added: bool = Field(description="false when this exact image was already enrolled")
    views: int
    imprint_read: str | None
    model_version: str


class CandidateOut(BaseModel):
    product_id: str
    name: str | None
    score: float = Field(description="calibrated probability that the pill is this clinical drug")
    band: str = Field(description="MATCH / UNCERTAIN / MISMATCH by the configured thresholds")
    evidence: dict[str, Any]


class PillOut(BaseModel):
    index: int
    bbox: list[int] | None = Field(None, description="x, y, width, height in the photo")
    imprint_read: str | None
    imprint_confidence: float
    features: dict[str, Any]
    candidates: list[CandidateOut]


class IdentifyOut(BaseModel):
    model_version: str
    pill_count: int
    pills: list[PillOut]
    timings_ms: dict[str, float]


class EmbeddingOut(BaseModel):
    model: str
    model_version: str
    dim: int
    embedding: list[float]


class CompareOut(BaseModel):
    model_version: str
    cosine_similarity: float
    euclidean_distance: float
    combined_score: float = Field(description="fused calibrated score that both show one product")
    band: str
    evidence: dict[str, Any]


def _dataclass_fields(cls: type[Any]) -> dict[str, Any]:
    """(type, default) of each field of a result dataclass, so its API model is not restated."""
    hints = get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = (hints[f.name], f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = (hints[f.name], Field(default_factory=f.default_factory))
        else:
            out[f.name] = (hints[f.name], ...)
    return out


# One pill verification as recorded in the audit trail: the fields of `PillVerification`
# (verify/results.py, the one result model), and what the record adds.
VerificationOut = create_model(
    "VerificationOut",
    __doc__="One pill verification as recorded in the audit trail.",
    **_dataclass_fields(PillVerification),
    needs_attention=(bool, Field(description="anything other than a clean MATCH")),
    fhir=(
        dict[str, Any],
        Field(description="not_written, queued (with identifier) or dry_run"),
    ),
)


class VerificationSummaryOut(BaseModel):
    id: str
    created_at: datetime
    verdict: str
    order: str
    patient: str | None
    dispense: str | None


class VerificationListOut(BaseModel):
    items: list[VerificationSummaryOut]
    next_before: str | None = Field(description="pass as `before` for the next page")
