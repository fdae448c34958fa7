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

from service import __version__
from service.config import Settings
from service.errors import DicomInvalid, StudyTooLarge
from service.fhir.dicom_sources import StudySource
from service.store import fingerprints
from service.store.fingerprints import FingerprintRow
from service.store.pool import Connect
from service.verify.common import ModelInfo
from service.verify.imaging.checks import (
    DuplicateMatch,
    duplicate_check,
    header_checks,
    unreadable_check,
)
from service.verify.imaging.headers import InstanceHeader, from_dataset
from service.verify.imaging.results import ImagingVerification, StudyCounts
from service.verify.imaging.study import StudyOrder
from service.vision.dicom.decode import PixelsUnreadable, decode_image, read_part10
from service.vision.dicom.fingerprint import FINGERPRINT_BITS, fingerprint

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
    """A check's result and the fingerprints of its images (history once recorded)."""

    verification: ImagingVerification
    prints: list[FingerprintRow]

    def history(self) -> list[FingerprintRow]:
        """The fingerprints as archive history, tied to the verification that checked them."""
        vid = self.verification.id
        return [
            dataclasses.replace(r, source="verification", verification_id=vid) for r in self.prints
        ]


async def check_study(
    settings: Settings,
    order: StudyOrder,
    source: StudySource,
    connect: Connect,
    *,
    verification_id: str | None = None,
    caller: str | None = None,
    progress: Progress | None = None,
) -> CheckedStudy:
    """Check one study against the EHR and the archive (see the module docstring)."""
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
    pixels = await _pixel_pass(settings, order, source, connect, headers, counts, progress)
    async with connect() as conn:
        reused = await fingerprints.sop_uids_elsewhere(
            conn, [h.sop_uid for h in headers], order_patient_key(order)
        )
    pixels.matches += [_match(m) for m in reused]
    checks += [
        unreadable_check(pixels.failures, pixels.checked + len(pixels.failures)),
        duplicate_check(pixels.matches, pixels.checked),
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
        models=[CHECKS_MODEL, FINGERPRINT_MODEL],
        caller=caller,
    )
    return CheckedStudy(v, pixels.rows)


async def _pixel_pass(
    settings: Settings,
    order: StudyOrder,
    source: StudySource,
    connect: Connect | None,
    headers: Sequence[InstanceHeader],
    counts: StudyCounts,
    progress: Progress | None,
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
                prints = await asyncio.to_thread(_fingerprints, data, settings)
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
                for frame, fp in prints
            ]
            if connect is not None:
                async with lookups, connect() as conn:
                    for _, fp in prints:
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
    settings: Settings, order: StudyOrder, source: StudySource, connect: Connect
) -> int:
    """Store an earlier, correctly labelled study's fingerprints as archive history (the PACS
    history duplicates are looked for in); returns how many were stored."""
    _, headers = await list_headers(source, order, settings)
    found = await _pixel_pass(settings, order, source, None, headers, StudyCounts(), None)
    async with connect() as conn:
        return await fingerprints.add(conn, found.rows)


def _fingerprints(data: bytes, settings: Settings) -> list[tuple[int, str]]:
    """Decode an instance's representative frames and fingerprint each (in a worker thread)."""
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
        (index, fingerprint(frame))
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
