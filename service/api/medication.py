"""Pill dispense verification: photos + MedicationRequest in, verdict (and DetectedIssue) out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Path, Query, Request, Response, UploadFile

from service.api.schemas import (
    DateTimeIn,
    SafeText,
    VerificationListOut,
    VerificationOut,
    VerificationSummaryOut,
)
from service.api.uploads import read_image_upload
from service.auth.deps import CanReadVerifications, CanVerify, GuardedRoute
from service.deps import DbConn, Pills, Settings, connection
from service.store import verifications as audit
from service.workflows.pills.submit import (
    MedicationSubmission,
    check_fhir,
    check_photo_count,
    submit_medication,
)
from service.workflows.record import Caller

router = APIRouter(
    prefix="/v1/medication-verifications",
    tags=["medication verification"],
    route_class=GuardedRoute,
)


@router.post(
    "",
    status_code=201,
    summary="Verify the pill(s) in one or more photos against a MedicationRequest",
    responses={200: {"description": "A retry with the same Idempotency-Key: the first result"}},
    response_model=VerificationOut,
)
async def create_verification(
    request: Request,
    response: Response,
    principal: CanVerify,
    pills: Pills,
    settings: Settings,
    photo: Annotated[list[UploadFile], File(description="one or more JPEG/PNG/WebP/HEIC photos")],
    medication_request: Annotated[
        SafeText,
        Form(
            max_length=500, description="MedicationRequest id, reference or URL on the FHIR server"
        ),
    ],
    medication_dispense: Annotated[
        SafeText | None, Form(max_length=500, description="MedicationDispense ref")
    ] = None,
    patient: Annotated[
        SafeText | None, Form(max_length=500, description="Patient reference, checked vs order")
    ] = None,
    idempotency_key: Annotated[
        SafeText | None, Header(max_length=200, description="retry-safe key chosen by the client")
    ] = None,
) -> dict[str, Any]:
    check_fhir(request.app.state.fhir)  # refused before any upload is read
    check_photo_count(len(photo), settings.limits)
    submission = MedicationSubmission(
        medication_request=medication_request,
        photos=[await read_image_upload(p, settings.limits) for p in photo],
        medication_dispense=medication_dispense,
        patient=patient,
        idempotency_key=idempotency_key,
        caller=Caller(principal.subject, principal.client_id, tuple(sorted(principal.scopes))),
    )
    result, created = await submit_medication(
        pills, settings, request.app.state.fhir, lambda: connection(request), submission
    )
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/medication-verifications/{result['id']}"
    return result


@router.get(
    "/{verification_id}", summary="One verification, as recorded", response_model=VerificationOut
)
async def get_verification(
    verification_id: Annotated[SafeText, Path(max_length=64)],
    principal: CanReadVerifications,
    conn: DbConn,
) -> dict[str, Any]:
    return (await audit.get(conn, verification_id)).result


@router.get("", summary="Verifications for audit, newest first")
async def list_verifications(
    principal: CanReadVerifications,
    conn: DbConn,
    patient: Annotated[SafeText | None, Query(max_length=200)] = None,
    order: Annotated[
        SafeText | None, Query(max_length=200, description="MedicationRequest ref")
    ] = None,
    verdict: Annotated[str | None, Query(pattern="^[A-Z_]+$", max_length=20)] = None,
    since: DateTimeIn | None = None,
    until: DateTimeIn | None = None,
    before: Annotated[
        DateTimeIn | None, Query(description="cursor: created_at of last row")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> VerificationListOut:
    rows = await audit.search(
        conn, kind="pill", patient_ref=patient, order_ref=order, verdict=verdict,
        since=since, until=until, before=before, limit=limit,
    )  # fmt: skip
    items = [
        VerificationSummaryOut(id=r.id, created_at=r.created_at, verdict=r.verdict,
                               order=r.order_ref, patient=r.patient_ref, dispense=r.related_ref)
        for r in rows
    ]  # fmt: skip
    next_cursor = rows[-1].created_at.isoformat() if len(rows) == limit else None
    return VerificationListOut(items=items, next_before=next_cursor)
