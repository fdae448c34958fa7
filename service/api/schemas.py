"""Request and response bodies of the public API (pydantic; shown in OpenAPI)."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import Annotated, Any, get_type_hints

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    create_model,
)

from service.store.products import Product
from service.verify.pills.catalog import Ingredient
from service.verify.pills.results import PillVerification

# Every text a client sends (body fields, form fields, path, query and header parameters) is
# SafeText, narrowed per field with `Field/Query/Form(max_length=...)`: no C0/C1 control
# characters (PostgreSQL text cannot hold NUL; none belongs in a name, code or reference) and a
# bounded length. Lone surrogates cannot be stored either; pydantic refuses them for any `str`.
NO_CONTROL_CHARACTERS = r"^[^\u0000-\u001f\u007f-\u009f]*$"
SafeText = Annotated[str, StringConstraints(max_length=1000, pattern=NO_CONTROL_CHARACTERS)]
ProductId = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
]
_ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_8601(value: object) -> object:
    """Refuse what pydantic would also take as a time (Unix seconds like `0.5`): the
    documented format is an RFC 3339 date-time."""
    if isinstance(value, str) and not _ISO_8601.match(value):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z")
    return value


# A time a client sends: RFC 3339 with its UTC offset (a naive time is ambiguous).
DateTimeIn = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]
# Row ids, limits and offsets stay far inside PostgreSQL's bigint.
ROW_ID_MAX = 2**53
OFFSET_MAX = 1_000_000


class IngredientIn(BaseModel):
    name: SafeText = Field(min_length=1, max_length=200)
    strength: SafeText | None = Field(None, max_length=100, examples=["500 mg"])


class ProductIn(BaseModel):
    """A library product; `id` is chosen by the caller and stable."""

    id: ProductId
    name: SafeText | None = Field(None, max_length=300)
    ndcs: list[Annotated[SafeText, Field(max_length=20)]] = Field(
        default_factory=list, max_length=50
    )
    rxcui: SafeText | None = Field(None, max_length=20, pattern=r"^\d+$")
    ingredients: list[IngredientIn] = Field(default_factory=list, max_length=20)
    dose_form: SafeText | None = Field(None, max_length=50, examples=["tablet"])
    imprint: SafeText | None = Field(None, max_length=100)
    colors: list[Annotated[SafeText, Field(max_length=30)]] = Field(
        default_factory=list, max_length=10
    )
    shape: SafeText | None = Field(None, max_length=50)
    # stored as PostgreSQL `real`: a pill is millimetres across, never a subnormal or 1e300
    size_mm: float | None = Field(None, ge=0.1, le=100, allow_inf_nan=False)
    labeler: SafeText | None = Field(None, max_length=200)

    def to_product(self) -> Product:
        data = self.model_dump()
        data["ingredients"] = [Ingredient(i.name, i.strength) for i in self.ingredients]
        data["imprint_source"] = "label" if self.imprint else None
        return Product(**data)


class IngredientOut(BaseModel):
    name: str
    strength: str | None = None


class ProductOut(BaseModel):
    """A stored product; not held to the input limits, which may tighten after it was stored."""

    id: str
    name: str | None = None
    ndcs: list[str] = Field(default_factory=list)
    rxcui: str | None = None
    ingredients: list[IngredientOut] = Field(default_factory=list)
    dose_form: str | None = None
    imprint: str | None = None
    colors: list[str] = Field(default_factory=list)
    shape: str | None = None
    size_mm: float | None = None
    labeler: str | None = None
    imprint_source: str | None = None
    clinical_drug: str | None = None
    images: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, p: Product, images: list[dict[str, Any]] | None = None) -> ProductOut:
        return cls(
            id=p.id, name=p.name, ndcs=p.ndcs, rxcui=p.rxcui,
            ingredients=[IngredientOut(name=i.name, strength=i.strength) for i in p.ingredients],
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


class ImagingVerificationIn(BaseModel):
    """The study to verify: an ImagingStudy id, reference or URL on the EHR's FHIR server."""

    imaging_study: SafeText = Field(
        min_length=1, max_length=500, examples=["ImagingStudy/123", "123"]
    )


class ImagingProgressOut(BaseModel):
    series_expected: int = 0
    instances_expected: int = 0
    series_found: int = 0
    instances_found: int = Field(0, description="listed by the PACS")
    instances_fetched: int = 0
    instances_checked: int = Field(0, description="decoded and fingerprinted")


class JobErrorOut(BaseModel):
    code: str
    title: str
    detail: str
    retryable: bool


class ImagingJobOut(BaseModel):
    """An imaging verification: its state, progress and, once done, the result."""

    id: str
    state: str = Field(description="queued, running, done or failed")
    created_at: datetime
    updated_at: datetime
    imaging_study: str
    patient: str | None = None
    order: str | None = Field(None, description="the ServiceRequest the study is based on")
    attempts: int
    progress: ImagingProgressOut
    outcome: str | None = Field(
        None, description="PASSED, FAILED, UNCERTAIN (a person decides) or INCOMPLETE once done"
    )
    findings: list[str] = []
    error: JobErrorOut | None = None
    result: dict[str, Any] | None = Field(
        None, description="the verification (checks, values compared, FHIR write) once done"
    )


class ImagingJobListOut(BaseModel):
    items: list[ImagingJobOut]
    next_before: str | None = None
