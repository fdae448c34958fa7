"""The embedding tier of an imaging-study check: only for the images and checks that need it.
Header checks (free) and fingerprints (cheap) have run; here the representative images of each
series are embedded with the first model of the cascade, and then
- CONTENT_MISMATCH, only when the header and the order agree on modality and body part (else
  the header checks already said what is wrong): nearest labelled references, a verdict per
  image; an image the first model leaves UNCERTAIN goes to the next model of the cascade; then
  each image's physical plausibility (its size from the header's geometry and the body
  region of its pixels) may overrule the vote (verify/imaging/content.py);
- near-duplicates, only when the fingerprints found none: the nearest images of other patients
  within `near_duplicate_distance` (cropped, re-windowed, resized, re-encoded copies).
Nothing is recorded here; the vectors are returned as history for the caller to record."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.config import ContentSettings
from service.models.image_embedder import ImageEmbedder, ModelCost
from service.store import image_vectors
from service.store.image_vectors import ImageRecord
from service.store.pool import Connect
from service.verify.imaging.bodyparts import region_for_code
from service.verify.imaging.checks import DuplicateMatch
from service.verify.imaging.content import (
    ContentBands,
    ImageContent,
    Label,
    PriorComparison,
    Reference,
    Verdict,
    content_check,
    declared_label,
    judge_image,
    lookalike_check,
    with_plausibility,
)
from service.verify.imaging.headers import InstanceHeader
from service.verify.imaging.plausibility import Body, Geometry, body_region, plausibility
from service.verify.imaging.results import CheckResult, FindingCode, Outcome
from service.verify.imaging.study import StudyOrder
from service.vision.dicom.canvas import to_png

NEAR_DUPLICATE_CANDIDATES = 5


@dataclass(frozen=True)
class Canvas:
    """A representative frame of an instance, as the model sees it."""

    header: InstanceHeader
    frame: int
    image: np.ndarray  # uint8 (CANVAS, CANVAS, 3)


@dataclass
class EmbeddingTier:
    """What the tier found: the content check, near-duplicates, history, and its cost."""

    content: CheckResult | None = None
    lookalike: CheckResult | None = None
    matches: list[DuplicateMatch] = field(default_factory=list)
    history: list[tuple[ImageRecord, np.ndarray]] = field(default_factory=list)
    model_version: str | None = None
    costs: dict[str, ModelCost] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)  # the checks that needed embeddings

    def evidence(self) -> dict[str, Any]:
        return {"checks": self.ran, "models": {m: c.as_evidence() for m, c in self.costs.items()}}


def measured(c: Canvas) -> tuple[Geometry, Body | None]:
    """The header's geometry of a canvas's image and its body region, in the image's own
    pixels (`canvas` scales the frame and centres it on black: only the frame's area counts)."""
    h = c.header
    rows, columns, size = h.rows or 0, h.columns or 0, c.image.shape[0]
    if rows < 1 or columns < 1:
        return Geometry(size, size, None), None
    scale = size / max(rows, columns)
    nh, nw = max(1, round(rows * scale)), max(1, round(columns * scale))
    y, x = (size - nh) // 2, (size - nw) // 2
    body = body_region(c.image[y : y + nh, x : x + nw], (h.modality or "").upper())
    if body is not None:
        body = Body(round(body.rows * rows / nh), round(body.columns * columns / nw), body.inside)
    return Geometry(rows, columns, h.pixel_spacing), body


def representative(headers: Sequence[InstanceHeader], per_series: int) -> set[str]:
    """SOP Instance UIDs of up to `per_series` evenly spaced instances of each series."""
    by_series: dict[str, list[InstanceHeader]] = {}
    for h in headers:
        by_series.setdefault(h.series_uid, []).append(h)
    chosen: set[str] = set()
    for items in by_series.values():
        items.sort(key=lambda h: (h.instance_number is None, h.instance_number or 0, h.sop_uid))
        n = min(per_series, len(items))
        chosen |= {items[int((i + 0.5) * len(items) / n)].sop_uid for i in range(n)}
    return chosen


def declared(
    order: StudyOrder, headers: Sequence[InstanceHeader], checks: Sequence[CheckResult]
) -> Label | None:
    """What the header and the order agree the study is: the content check runs only then (when
    they disagree, the header checks already said what is wrong). The modality must have
    passed its check; the body part passed, or the header names none (the order's site)."""
    outcome = {c.code: c.outcome for c in checks}
    if outcome.get(FindingCode.MODALITY_MISMATCH) is not Outcome.PASSED:
        return None
    if outcome.get(FindingCode.BODY_PART_MISMATCH) not in (Outcome.PASSED, Outcome.COULD_NOT_CHECK):
        return None
    modalities = {h.modality for h in headers if h.modality}
    if len(modalities) != 1:
        return None
    return declared_label(modalities.pop(), region_for_code(order.body_site))


async def embedding_tier(
    cfg: ContentSettings,
    embedder: ImageEmbedder,
    connect: Connect,
    canvases: Sequence[Canvas],
    *,
    patient_key: str,
    order: StudyOrder,
    headers: Sequence[InstanceHeader],
    header_results: Sequence[CheckResult],
    duplicates_found: bool,
    lookups: bool = True,
) -> EmbeddingTier:
    """Embed the canvases when a check needs them and run those checks (see module doc).
    `lookups=False` embeds for history only (enrolment)."""
    tier = EmbeddingTier()
    label = declared(order, headers, header_results)
    if lookups and label is not None:
        tier.ran.append("content")
    if lookups and cfg.near_duplicate_distance > 0 and not duplicates_found:
        tier.ran.append("near_duplicate")
    if lookups and cfg.lookalike:
        tier.ran.append("prior_lookalike")
    if not canvases or (lookups and not tier.ran):
        return tier
    first = cfg.models[0]
    cost = tier.costs.setdefault(first, ModelCost())
    images = [c.image for c in canvases]
    vectors = await asyncio.to_thread(embedder.embed, first, images, cost)
    tier.model_version = embedder.version(first)
    tier.history = [(_record(c, patient_key), v) for c, v in zip(canvases, vectors, strict=True)]
    if "near_duplicate" in tier.ran:
        tier.matches = await _near_duplicates(cfg, connect, tier.model_version, canvases, vectors,
                                              patient_key)  # fmt: skip
    if "prior_lookalike" in tier.ran:
        tier.lookalike = await _lookalike(cfg, connect, tier.model_version, canvases, vectors,
                                          patient_key)  # fmt: skip
    if "content" in tier.ran and label is not None:
        judged = await _content(cfg, embedder, connect, canvases, vectors, label, tier)
        tier.content = content_check(label, judged)
    return tier


async def _near_duplicates(
    cfg: ContentSettings,
    connect: Connect,
    version: str,
    canvases: Sequence[Canvas],
    vectors: np.ndarray,
    patient_key: str,
) -> list[DuplicateMatch]:
    found: list[DuplicateMatch] = []
    async with connect() as conn:
        for c, v in zip(canvases, vectors, strict=True):
            near = await image_vectors.nearest_other_patients(
                conn, version, v, patient_key, k=NEAR_DUPLICATE_CANDIDATES,
                max_distance=cfg.near_duplicate_distance,
            )  # fmt: skip
            found += [
                DuplicateMatch(c.header.sop_uid, n.study_uid, round(n.distance, 4), "embedding")
                for n in near
            ]
    return found


async def _lookalike(
    cfg: ContentSettings,
    connect: Connect,
    version: str,
    canvases: Sequence[Canvas],
    vectors: np.ndarray,
    patient_key: str,
) -> CheckResult:
    compared: list[PriorComparison] = []
    async with connect() as conn:
        for c, v in zip(canvases, vectors, strict=True):
            own = await image_vectors.nearest_same_patient(
                conn, version, v, patient_key, exclude_study_uid=c.header.study_uid, k=1
            )
            other = await image_vectors.nearest_other_patients(
                conn, version, v, patient_key, k=1, max_distance=2.0
            )
            compared.append(PriorComparison(
                c.header.sop_uid, own[0].distance if own else None,
                other[0].distance if other else None, other[0].study_uid if other else None,
            ))  # fmt: skip
    return lookalike_check(compared, cfg.lookalike_margin)


async def _content(
    cfg: ContentSettings,
    embedder: ImageEmbedder,
    connect: Connect,
    canvases: Sequence[Canvas],
    vectors: np.ndarray,
    label: Label,
    tier: EmbeddingTier,
) -> list[ImageContent]:
    """A verdict per image; images left UNCERTAIN go to the next model of the cascade."""
    bands = ContentBands(cfg.evidence_distance, cfg.temperature, cfg.match_p, cfg.mismatch_p)
    pending = list(range(len(canvases)))
    judged: dict[int, ImageContent] = {}
    for depth, name in enumerate(cfg.models):
        if not pending:
            break
        if depth == 0:
            these = vectors
        else:
            cost = tier.costs.setdefault(name, ModelCost())
            images = [canvases[i].image for i in pending]
            these = await asyncio.to_thread(embedder.embed, name, images, cost)
        version = embedder.version(name)
        async with connect() as conn:
            for row, i in enumerate(pending):
                near = await image_vectors.nearest_labelled(conn, version, these[row], k=cfg.k)
                refs = [_reference(n) for n in near if n.modality and n.body_part]
                judged[i] = judge_image(canvases[i].header.sop_uid, label, refs, bands, name)
        pending = [i for i in pending if judged[i].verdict is Verdict.UNCERTAIN]
    if cfg.plausibility:  # after the cascade: a second model cannot answer a physical objection
        for i, c in enumerate(canvases):
            geometry, body = measured(c)
            found = plausibility(label.modality, label.body_part, geometry, body)
            judged[i] = with_plausibility(judged[i], found)
    return [judged[i] for i in range(len(canvases))]


def _reference(n: image_vectors.ImageNeighbour) -> Reference:
    return Reference(n.study_uid, n.sop_uid, Label(n.modality or "", n.body_part or ""), n.distance)


def _record(c: Canvas, patient_key: str) -> ImageRecord:
    h = c.header
    return ImageRecord(
        sop_uid=h.sop_uid, series_uid=h.series_uid, study_uid=h.study_uid,
        patient_key=patient_key, frame=c.frame, canvas_png=to_png(c.image), source="archive",
        modality=h.modality, body_part=h.body_part, laterality=h.laterality,
    )  # fmt: skip
