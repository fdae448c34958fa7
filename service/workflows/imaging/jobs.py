"""Imaging verifications as jobs: submitted by the API (202), run by workers (inside `verity
serve` or `verity worker`, any number at once), recorded with their FHIR write in ONE
transaction that also marks the job done, fenced on the job's lease, so a crash, a restart or
two workers lose nothing and record nothing twice."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.config import ImagingSettings, Settings
from service.errors import DatabaseUnavailable, InternalError, VerityError
from service.fhir.client import FhirClient
from service.metrics import IMAGING_INSTANCES, IMAGING_JOB_SECONDS, IMAGING_JOBS
from service.models.image_embedder import ImageEmbedder, load_image_embedder
from service.store import jobs
from service.store import verifications as audit
from service.store.jobs import JobRow, LeaseLost
from service.store.pool import Connect
from service.verify.imaging.results import ImagingVerification, StudyCounts
from service.workflows.imaging import thumbnails
from service.workflows.imaging.check import CheckedStudy, check_study
from service.workflows.imaging.read import ResourceSource, read_study
from service.workflows.imaging.sources import PacsSources
from service.workflows.imaging.summary import to_json
from service.workflows.record import Caller, Recorded, record
from service.writeback.imaging import imaging_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImagingRequest:
    study_ref: str  # "ImagingStudy/<id>", already parsed
    idempotency_key: str | None = None
    caller: Caller = Caller()

    def sha256(self) -> str:
        """Identity of the request, to tell a retry from a reused idempotency key."""
        return hashlib.sha256(self.study_ref.encode()).hexdigest()


async def submit(connect: Connect, req: ImagingRequest) -> tuple[JobRow, bool]:
    """Queue the verification (or find the one this idempotency key already queued)."""
    new = jobs.NewJob(
        id=str(uuid.uuid4()), study_ref=req.study_ref, request_sha256=req.sha256(),
        idempotency_key=req.idempotency_key, caller_subject=req.caller.subject,
        caller_client_id=req.caller.client_id, caller_scopes=req.caller.scopes,
    )  # fmt: skip
    async with connect() as conn:
        return await jobs.submit(conn, new)


@dataclass(frozen=True)
class Imaging:
    """What running an imaging job needs: settings, the EHR, the PACS, the database."""

    settings: Settings
    fhir: ResourceSource
    pacs: PacsSources
    connect: Connect
    embedder: ImageEmbedder | None = None  # the pixel tiers (None: off)


async def record_check(
    conn: psycopg.AsyncConnection,
    settings: Settings,
    checked: CheckedStudy,
    *,
    deliver: bool,
    caller: Caller | None = None,
    request_sha256: str = "",
    keep_history: bool = True,
) -> Recorded:
    """The audit row, its outbox row and (unless a dry run) the study's fingerprints as history,
    in the caller's transaction."""
    v = checked.verification
    write = imaging_write(v, settings.writeback)
    shown = thumbnails.choose(checked.canvases, settings.imaging.review_thumbnails)
    row = audit_row(v, caller or Caller(), request_sha256)
    row.result["thumbnails"] = [t.describe() for t, _ in shown]
    recorded = await record(
        conn, row, write, deliver=deliver, findings=[f.value for f in v.findings]
    )  # fmt: skip
    if recorded.created:
        await thumbnails.keep(conn, v.id, shown)
    if keep_history and recorded.created:
        await checked.record_history(conn)
    return recorded


async def run_job(imaging: Imaging, job: JobRow) -> None:
    """Run one claimed job to its end: done (recorded), queued again (retryable failure) or
    failed; a lost lease stops it without recording anything."""
    cfg = imaging.settings.imaging
    caller = Caller(job.caller_subject, job.caller_client_id, tuple(job.caller_scopes))

    async def progress(counts: StudyCounts) -> None:
        async with imaging.connect() as conn:
            await jobs.report(conn, job, lease_s=cfg.lease_s, progress=_counts(counts))

    started = time.monotonic()
    try:
        order = await read_study(imaging.fhir, job.study_ref)
        async with imaging.connect() as conn:
            await jobs.report(
                conn, job, lease_s=cfg.lease_s, patient_ref=order.patient_ref,
                order_ref=order.order_ref,
            )  # fmt: skip
        source = await imaging.pacs.for_order(order)
        checked = await check_study(
            imaging.settings, order, source, imaging.connect, verification_id=job.id,
            caller=job.caller_client_id, progress=progress, embedder=imaging.embedder,
        )  # fmt: skip
        v = checked.verification
        async with imaging.connect() as conn, conn.transaction():
            await jobs.finish(
                conn, job, outcome=v.outcome, findings=[f.value for f in v.findings],
                progress=_counts(v.counts),
            )  # fmt: skip
            await record_check(
                conn, imaging.settings, checked, deliver=True, caller=caller,
                request_sha256=ImagingRequest(job.study_ref).sha256(),
            )  # fmt: skip
        IMAGING_JOBS.labels("done").inc()
        IMAGING_INSTANCES.labels("fetched").inc(v.counts.instances_fetched)
        IMAGING_INSTANCES.labels("checked").inc(v.counts.instances_checked)
        log.info("imaging job done", extra={"job": job.id, "outcome": v.outcome})
    except LeaseLost:
        IMAGING_JOBS.labels("lease_lost").inc()
        log.warning("imaging job lease taken over by another worker", extra={"job": job.id})
    except (psycopg.Error, PoolTimeout, DatabaseUnavailable):
        raise  # the database is gone: the lease brings the job back later
    except VerityError as exc:
        await _failed(imaging, job, exc, cfg)
    except Exception as exc:  # a bug: logged with its traceback, retried like a 5xx
        log.error("imaging job: unexpected %s", type(exc).__name__, exc_info=exc)
        await _failed(imaging, job, InternalError("unexpected error running the job"), cfg)
    finally:
        IMAGING_JOB_SECONDS.observe(time.monotonic() - started)


async def _failed(imaging: Imaging, job: JobRow, exc: VerityError, cfg: ImagingSettings) -> None:
    """Queue the job again with backoff while retrying can help, else fail it for good."""
    retry = exc.retryable and job.attempts < cfg.max_attempts
    delay = backoff_s(job.attempts, cfg) if retry else None
    error = jobs.error_fields(exc.code, exc.title, exc.detail, exc.retryable)
    async with imaging.connect() as conn:
        await jobs.fail(conn, job, error, retry_in_s=delay)
    IMAGING_JOBS.labels("retry" if retry else "failed").inc()
    log.warning(
        "imaging job %s", "will be retried" if retry else "failed",
        extra={"job": job.id, "error_code": exc.code, "attempt": job.attempts},
    )  # fmt: skip


def backoff_s(attempts: int, cfg: ImagingSettings) -> float:
    """Exponential backoff with jitter (50-100% of the capped exponential)."""
    ceiling = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** max(attempts - 1, 0))
    return float(ceiling * random.uniform(0.5, 1.0))


async def run_worker(pool: AsyncConnectionPool, imaging: Imaging, stop: asyncio.Event) -> None:
    """Claim and run due jobs until `stop` is set; one job at a time per worker."""
    cfg = imaging.settings.imaging
    while not stop.is_set():
        try:
            async with pool.connection() as conn:
                await conn.set_autocommit(True)
                claimed = await jobs.claim(conn, limit=1, lease_s=cfg.lease_s)
            for job in claimed:
                await run_job(imaging, job)
        except (psycopg.Error, PoolTimeout, DatabaseUnavailable) as exc:
            log.warning("imaging worker: database unavailable (%s)", type(exc).__name__)
            claimed = []
        if not claimed:
            try:
                await asyncio.wait_for(stop.wait(), timeout=cfg.poll_interval_s)
            except TimeoutError:
                pass


def audit_row(v: ImagingVerification, caller: Caller, request_sha256: str) -> audit.NewVerification:
    return audit.NewVerification(
        id=v.id, kind="imaging", request_sha256=request_sha256 or v.id, order_ref=v.study_ref,
        verdict=v.outcome, result=to_json(v), patient_ref=v.patient_ref, related_ref=v.order_ref,
        caller_subject=caller.subject, caller_client_id=caller.client_id,
        caller_scopes=caller.scopes, input_sha256=tuple(v.instance_sha256),
        model_versions={m.name: m.version for m in v.models},
    )  # fmt: skip


def _counts(counts: StudyCounts) -> dict[str, Any]:
    return dataclasses.asdict(counts)


async def serve_jobs(
    pool: AsyncConnectionPool,
    settings: Settings,
    fhir: FhirClient,
    stop: asyncio.Event,
    *,
    embedder: ImageEmbedder | None = None,
) -> None:
    """Run imaging jobs until `stop` (inside `verity serve`, or `verity worker`); the imaging
    models are the app's when it has loaded them, else loaded here."""
    smart = fhir.auth if settings.pacs.auth == "smart" else None
    pacs = PacsSources(settings.pacs, smart_auth=smart)
    if embedder is None:
        embedder = await asyncio.to_thread(load_image_embedder, settings)
    imaging = Imaging(settings, fhir, pacs, pool.connection, embedder)
    log.info("imaging worker started")
    try:
        await run_worker(pool, imaging, stop)
    finally:
        await pacs.aclose()
        log.info("imaging worker stopped")


async def job_with_result(
    conn: psycopg.AsyncConnection, job_id: str
) -> tuple[JobRow, dict[str, Any] | None]:
    """A job and, once done, its recorded verification (the audit row's result)."""
    job = await jobs.get(conn, job_id)
    result = (await audit.get(conn, job.id)).result if job.state == "done" else None
    return job, result


find_jobs = jobs.search
