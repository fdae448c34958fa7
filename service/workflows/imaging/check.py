"""The path of one imaging-study check, whatever runs it (a job, the CLI, the evaluation, the
demo): list the study, read every header, run the header checks, then stream the instances
(a bounded number at once, never the whole study in memory) through decoding and the pixel
fingerprint, look each one up across the archive, and return the result. Nothing is recorded
here: callers record (jobs, CLI) or only score (evaluation)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service import __version__
from service.config import Settings
from service.errors import DicomInvalid, StudyTooLarge
from service.fhir.dicom_sources import StudySource
from service.metrics import IMAGING_TIER_SECONDS, IMAGING_TIER_STUDIES
from service.models.image_embedder import ImageEmbedder
from service.store import fingerprints, image_vectors
from service.store.fingerprints import FingerprintRow
from service.store.image_vectors import ImageRecord
from service.store.pool import Connect
from service.verify.common import ModelInfo
from service.verify.imaging.bodyparts import region_for_code
from service.verify.imaging.checks import (
    DuplicateMatch,
    duplicate_check,
    header_checks,
    unreadable_check,
)
from service.verify.imaging.headers import InstanceHeader, from_dataset
from service.verify.imaging.results import (
    CheckResult,
    FindingCode,
    ImagingVerification,
    Outcome,
    StudyCounts,
)
from service.verify.imaging.study import StudyOrder
from service.vision.dicom.canvas import canvas
from service.vision.dicom.decode import PixelsUnreadable, decode_image, read_part10
from service.vision.dicom.fingerprint import FINGERPRINT_BITS, fingerprint
from service.workflows.imaging.pixels import Canvas, EmbeddingTier, embedding_tier, representative

Progress = Callable[[StudyCounts], Awaitable[None]]
CHECKS_MODEL = ModelInfo("verity-imaging-checks", __version__)
FINGERPRINT_MODEL = ModelInfo("verity-pixel-fingerprint", f"dct-{FINGERPRINT_BITS}")
DUPLICATE_CANDIDATES = 5  # nearest other-patient fingerprints looked at per frame


def patient_key(system: str | None, value: str | None, fallback: str | None = None) -> str:
    """An opaque key of a patient's identity for the fingerprint archive (never the MRN)."""
    basis = f"{system or ''}|{value}" if value else f"ref|{fallback or ''}"
    return hashlib.sha256(basis.encode()).hexdigest()


def order_patient_key(order: StudyOrder) -> str:
    return patient_key(order.mrn_system, order.mrn, order.patient_ref)


@dataclass
class _Pixels:
    """What the pixel pass found, instance by instance (fingerprints kept, pixels dropped)."""

    fetched: int = 0
    fetched_bytes: int = 0
    checked: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    matches: list[DuplicateMatch] = field(default_factory=list)
    rows: list[FingerprintRow] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    canvases: list[Canvas] = field(default_factory=list)


async def list_headers(
    source: StudySource, order: StudyOrder, settings: Settings
) -> tuple[int, list[InstanceHeader]]:
    """Every instance header of the study (WADO-RS metadata: no pixels) and its series count."""
    series = await source.series(order.study_uid)
    total = sum(s.instances for s in series)
    if total > settings.pacs.max_instances:
        raise StudyTooLarge(
            f"the study holds {total} instances; the limit is {settings.pacs.max_instances}"
        )
    headers: list[InstanceHeader] = []
    for s in series:
        headers += [from_dataset(ds) for ds in await source.metadata(order.study_uid, s.uid)]
    return len(series), headers


@dataclass(frozen=True)
class CheckedStudy:
    """A check's result and the fingerprints and embeddings of its images (history once
    recorded)."""

    verification: ImagingVerification
    prints: list[FingerprintRow]
    images: list[tuple[ImageRecord, np.ndarray]] = field(default_factory=list)
    model_version: str | None = None
    canvases: list[Canvas] = field(default_factory=list)  # representative frames, for review

    def history(self) -> list[FingerprintRow]:
        """The fingerprints as archive history, tied to the verification that checked them."""
        vid = self.verification.id
        return [
            dataclasses.replace(r, source="verification", verification_id=vid) for r in self.prints
        ]

    async def record_history(self, conn: Any) -> None:
        """Store the fingerprints and the embeddings as history (in the caller's transaction)."""
        await fingerprints.add(conn, self.history())
        if self.images and self.model_version:
            vid = self.verification.id
            records = [dataclasses.replace(r, source="verification", verification_id=vid)
                       for r, _ in self.images]  # fmt: skip
            vectors = np.stack([v for _, v in self.images])
            await image_vectors.add(conn, records, self.model_version, vectors)


async def check_study(
    settings: Settings,
    order: StudyOrder,
    source: StudySource,
    connect: Connect,
    *,
    verification_id: str | None = None,
    caller: str | None = None,
    progress: Progress | None = None,
    embedder: ImageEmbedder | None = None,
) -> CheckedStudy:
    """Check one study against the EHR and the archive (see the module docstring)."""
    tiers: dict[str, Any] = {}
    t0 = time.perf_counter()
    n_series, headers = await list_headers(source, order, settings)
    counts = StudyCounts(
        series_expected=order.number_of_series or len(order.series),
        instances_expected=order.number_of_instances
        or sum(len(s.instance_uids) for s in order.series),
        series_found=n_series,
        instances_found=len(headers),
    )
    if progress is not None:
        await progress(counts)
    checks = header_checks(
        order, headers, date_window_days=settings.imaging.date_window_days,
        accepted_issuers=settings.imaging.patient_id_issuers,
    )  # fmt: skip
    t0 = _tier(tiers, "headers", t0)
    want = _embed_wanted(settings, embedder, headers)
    pixels = await _pixel_pass(settings, order, source, connect, headers, counts, progress, want)
    async with connect() as conn:
        reused = await fingerprints.sop_uids_elsewhere(
            conn, [h.sop_uid for h in headers], order_patient_key(order)
        )
    pixels.matches += [_match(m) for m in reused]
    t0 = _tier(tiers, "fingerprints", t0)
    tier = EmbeddingTier()
    if embedder is not None:
        tier = await embedding_tier(
            settings.imaging.content, embedder, connect, pixels.canvases,
            patient_key=order_patient_key(order), order=order, headers=headers,
            header_results=checks, duplicates_found=bool(pixels.matches),
        )  # fmt: skip
        if tier.ran:
            _tier(tiers, "embeddings", t0)
            tiers["embeddings"].update(tier.evidence())
    pixels.matches += tier.matches
    checks += [
        unreadable_check(pixels.failures, pixels.checked + len(pixels.failures)),
        duplicate_check(pixels.matches, pixels.checked),
        tier.content or _content_not_run(embedder, bool(pixels.canvases)),
        *([tier.lookalike] if tier.lookalike else []),
    ]
    v = ImagingVerification(
        id=verification_id or str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        study_ref=order.study_ref,
        study_uid=order.study_uid,
        checks=checks,
        counts=_with(counts, pixels),
        patient_ref=order.patient_ref,
        order_ref=order.order_ref,
        accession=order.accession,
        instance_sha256=pixels.sha256,
        models=[CHECKS_MODEL, FINGERPRINT_MODEL, *_embedding_models(embedder, tier)],
        caller=caller,
        tiers=tiers,
    )
    return CheckedStudy(v, pixels.rows, tier.history, tier.model_version, pixels.canvases)


def _tier(tiers: dict[str, Any], name: str, t0: float) -> float:
    """Record a tier's wall time (report evidence and /metrics); returns the time now."""
    now = time.perf_counter()
    tiers[name] = {"wall_ms": round((now - t0) * 1000, 1)}
    IMAGING_TIER_SECONDS.labels(name).observe(now - t0)
    IMAGING_TIER_STUDIES.labels(name).inc()
    return now


def _embed_wanted(
    settings: Settings, embedder: ImageEmbedder | None, headers: Sequence[InstanceHeader]
) -> set[str]:
    """The instances whose representative frames are kept as canvases: for the embedding tier,
    and as the review thumbnails (kept with the verification even when the tier is off)."""
    if embedder is None and settings.imaging.review_thumbnails == 0:
        return set()
    return representative(headers, settings.imaging.content.images_per_series)


def _embedding_models(embedder: ImageEmbedder | None, tier: EmbeddingTier) -> list[ModelInfo]:
    if embedder is None:
        return []
    return [ModelInfo(name, embedder.version(name)) for name in tier.costs]


def _content_not_run(embedder: ImageEmbedder | None, had_images: bool) -> CheckResult:
    """The content check's result when its tier did not judge the pixels."""
    if embedder is None:
        summary = "The pixel content tier is off (imaging.content.enabled); content not judged."
    elif not had_images:
        summary = "No image could be decoded to judge its content."
    else:
        summary = "The header and the order do not agree on what the study is; content not judged."
    return CheckResult(FindingCode.CONTENT_MISMATCH, Outcome.NOT_APPLICABLE, "moderate", summary)


async def _pixel_pass(
    settings: Settings,
    order: StudyOrder,
    source: StudySource,
    connect: Connect | None,
    headers: Sequence[InstanceHeader],
    counts: StudyCounts,
    progress: Progress | None,
    want_canvas: set[str] | frozenset[str] = frozenset(),
) -> _Pixels:
    """Fetch, decode and fingerprint each instance, `pacs.concurrency` at a time, and look each
    fingerprint up among other patients' images (unless `connect` is None: enrolment);
    progress about once a second."""
    found = _Pixels()
    gate = asyncio.Semaphore(settings.pacs.concurrency)
    lookups = asyncio.Lock()  # one lookup at a time: `connect` may hand out one connection
    key = order_patient_key(order)
    last = time.monotonic()

    async def one(h: InstanceHeader) -> None:
        nonlocal last
        async with gate:
            data = await source.retrieve(h.study_uid, h.series_uid, h.sop_uid)
            found.fetched += 1
            found.fetched_bytes += len(data)
            if found.fetched_bytes > settings.pacs.max_study_bytes:
                raise StudyTooLarge(
                    f"the study holds more than {settings.pacs.max_study_bytes} bytes"
                )
            found.sha256.append(hashlib.sha256(data).hexdigest())
            try:
                prints = await asyncio.to_thread(
                    _fingerprints, data, settings, h.sop_uid in want_canvas
                )
            except PixelsUnreadable as exc:
                found.failures.append((h.sop_uid, exc.reason))
                return
            del data
            found.checked += 1
            found.rows += [
                FingerprintRow(
                    sop_uid=h.sop_uid,
                    series_uid=h.series_uid,
                    study_uid=h.study_uid,
                    patient_key=key,
                    frame=frame,
                    fingerprint=fp,
                    source="archive",
                )  # fmt: skip
                for frame, fp, _ in prints
            ]
            found.canvases += [Canvas(h, frame, c) for frame, _, c in prints if c is not None]
            if connect is not None:
                async with lookups, connect() as conn:
                    for _, fp, _ in prints:
                        near = await fingerprints.nearest_other_patients(
                            conn, fp, key, k=DUPLICATE_CANDIDATES,
                            max_distance=settings.imaging.duplicate_max_distance,
                        )  # fmt: skip
                        found.matches += [_match(m, h.sop_uid) for m in near]
        if progress is not None and time.monotonic() - last >= 1.0:
            last = time.monotonic()
            await progress(_with(counts, found))

    try:  # the first failure (PACS down, over the limits) cancels the instances still running
        async with asyncio.TaskGroup() as tasks:
            for h in headers:
                tasks.create_task(one(h))
    except ExceptionGroup as group:
        raise group.exceptions[0] from None
    if progress is not None:
        await progress(_with(counts, found))
    return found


async def enrol_study(
    settings: Settings,
    order: StudyOrder,
    source: StudySource,
    connect: Connect,
    *,
    embedder: ImageEmbedder | None = None,
    labelled: bool = True,
) -> int:
    """Store an earlier, correctly labelled study as archive history (fingerprints, and with an
    embedder its representative images' embeddings, labelled by the order's body site and the
    header's modality: references for content checks); returns the fingerprints stored."""
    _, headers = await list_headers(source, order, settings)
    want = _embed_wanted(settings, embedder, headers)
    found = await _pixel_pass(settings, order, source, None, headers, StudyCounts(), None, want)
    tier = EmbeddingTier()
    if embedder is not None:
        tier = await embedding_tier(
            settings.imaging.content, embedder, connect, found.canvases,
            patient_key=order_patient_key(order), order=order, headers=headers,
            header_results=[], duplicates_found=False, lookups=False,
        )  # fmt: skip
    region = region_for_code(order.body_site)
    records = [
        (dataclasses.replace(r, body_part=region or r.body_part,
                             labelled=labelled and bool(region and r.modality)), v)
        for r, v in tier.history
    ]  # fmt: skip
    async with connect() as conn:
        added = await fingerprints.add(conn, found.rows)
        if records and tier.model_version:
            await image_vectors.add(
                conn, [r for r, _ in records], tier.model_version, np.stack([v for _, v in records])
            )
        return added


def _fingerprints(
    data: bytes, settings: Settings, want_canvas: bool = False
) -> list[tuple[int, str, np.ndarray | None]]:
    """Decode an instance's representative frames and fingerprint each (in a worker thread),
    with its model input canvas when the embedding tier wants this instance."""
    try:
        ds = read_part10(data)
    except DicomInvalid:
        raise PixelsUnreadable("malformed DICOM") from None
    image = decode_image(
        ds,
        max_frames=settings.imaging.representative_frames,
        frame_limit=settings.limits.max_dicom_frames,
    )
    return [
        (index, fingerprint(frame), canvas(frame) if want_canvas else None)
        for index, frame in zip(image.frame_indices, image.frames, strict=True)
    ]


def _match(m: fingerprints.FingerprintMatch, sop_uid: str | None = None) -> DuplicateMatch:
    return DuplicateMatch(
        sop_uid=sop_uid or m.sop_uid,
        other_study_uid=m.study_uid,
        distance=m.distance,
        kind=m.kind,
    )


def _with(counts: StudyCounts, pixels: _Pixels) -> StudyCounts:
    return dataclasses.replace(
        counts, instances_fetched=pixels.fetched, instances_checked=pixels.checked
    )
