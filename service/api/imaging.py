"""Imaging-study verification: an ImagingStudy in, a job (202), its progress, its result."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response

from service.api.schemas import (
    DateTimeIn,
    ImagingJobListOut,
    ImagingJobOut,
    ImagingVerificationIn,
    SafeText,
)
from service.auth.deps import CanReadVerifications, CanVerify, GuardedRoute
from service.deps import DbConn, Settings, connection
from service.errors import FhirNotConfigured
from service.fhir.references import parse_reference
from service.store.jobs import JobRow
from service.workflows.imaging.jobs import ImagingRequest, find_jobs, job_with_result, submit
from service.workflows.record import Caller

STUDY_TYPE = "ImagingStudy"
PREFIX = "/v1/imaging-verifications"
router = APIRouter(prefix=PREFIX, tags=["imaging verification"], route_class=GuardedRoute)


@router.post(
    "",
    status_code=202,
    summary="Queue the verification of an ImagingStudy against its order, patient and archive",
    responses={200: {"description": "A retry with the same Idempotency-Key: the same job"}},
    response_model=ImagingJobOut,
)
async def create_imaging_verification(
    request: Request,
    response: Response,
    body: ImagingVerificationIn,
    principal: CanVerify,
    settings: Settings,
    idempotency_key: Annotated[
        SafeText | None, Header(max_length=200, description="retry-safe key chosen by the client")
    ] = None,
) -> dict[str, Any]:
    if request.app.state.fhir is None:
        raise FhirNotConfigured("set VERITY_FHIR__BASE_URL to verify EHR imaging studies")
    req = ImagingRequest(
        study_ref=parse_reference(body.imaging_study, STUDY_TYPE, settings.fhir.base_url),
        idempotency_key=idempotency_key,
        caller=Caller(principal.subject, principal.client_id, tuple(sorted(principal.scopes))),
    )
    job, created = await submit(lambda: connection(request), req)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"{PREFIX}/{job.id}"
    response.headers["Retry-After"] = str(max(1, round(settings.imaging.poll_interval_s)))
    return job_out(job, None)


@router.get(
    "/{verification_id}",
    summary="One imaging verification: state, progress, and the result once done",
    response_model=ImagingJobOut,
)
async def get_imaging_verification(
    verification_id: Annotated[SafeText, Path(max_length=64)],
    principal: CanReadVerifications,
    conn: DbConn,
) -> dict[str, Any]:
    return job_out(*(await job_with_result(conn, verification_id)))


@router.get("", summary="Imaging verifications for audit, newest first")
async def list_imaging_verifications(
    principal: CanReadVerifications,
    conn: DbConn,
    patient: Annotated[SafeText | None, Query(max_length=200)] = None,
    study: Annotated[SafeText | None, Query(max_length=200, description="ImagingStudy ref")] = None,
    order: Annotated[
        SafeText | None, Query(max_length=200, description="ServiceRequest ref")
    ] = None,
    outcome: Annotated[str | None, Query(pattern="^(PASSED|FAILED|UNCERTAIN|INCOMPLETE)$")] = None,
    state: Annotated[str | None, Query(pattern="^(queued|running|done|failed)$")] = None,
    since: DateTimeIn | None = None,
    until: DateTimeIn | None = None,
    before: Annotated[
        DateTimeIn | None, Query(description="cursor: created_at of the last row")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ImagingJobListOut:
    rows = await find_jobs(
        conn, patient_ref=patient, study_ref=study, order_ref=order, outcome=outcome,
        state=state, since=since, until=until, before=before, limit=limit,
    )  # fmt: skip
    next_cursor = rows[-1].created_at.isoformat() if len(rows) == limit else None
    return ImagingJobListOut(
        items=[ImagingJobOut.model_validate(job_out(r, None)) for r in rows],
        next_before=next_cursor,
    )


def job_out(job: JobRow, result: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": job.id, "state": job.state, "created_at": job.created_at,
        "updated_at": job.updated_at, "imaging_study": job.study_ref,
        "patient": job.patient_ref, "order": job.order_ref, "attempts": job.attempts,
        "progress": job.progress, "outcome": job.outcome, "findings": job.findings,
        "error": job.error, "result": result,
    }  # fmt: skip
