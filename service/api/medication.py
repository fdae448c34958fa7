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
from service.errors import FhirNotConfigured, RequestInvalid
from service.fhir.references import parse_reference
from service.store import verifications as audit
from service.workflows.pills.verify import ORDER_TYPE, PillRequest, verify_pill
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
    fhir = request.app.state.fhir
    if fhir is None:
        raise FhirNotConfigured("set VERITY_FHIR__BASE_URL to verify against EHR orders")
    if len(photo) > settings.limits.max_photos_per_request:
        raise RequestInvalid(f"at most {settings.limits.max_photos_per_request} photos")
    base = settings.fhir.base_url
    req = PillRequest(
        order_ref=parse_reference(medication_request, ORDER_TYPE, base),
        photos=[await read_image_upload(p, settings.limits) for p in photo],
        dispense_ref=(
            parse_reference(medication_dispense, "MedicationDispense", base)
            if medication_dispense
            else None
        ),  # fmt: skip
        patient_ref=parse_reference(patient, "Patient", base) if patient else None,
        idempotency_key=idempotency_key,
        caller=Caller(principal.subject, principal.client_id, tuple(sorted(principal.scopes))),
    )
    if idempotency_key:
        async with connection(request) as conn:
            earlier = await audit.find_by_idempotency_key(
                conn, principal.client_id, idempotency_key, req.sha256()
            )
        if earlier is not None:
            response.status_code = 200
            return earlier.result
    _, recorded = await verify_pill(
        pills, settings, req, fhir, lambda: connection(request), deliver=True
    )
    if not recorded.created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/medication-verifications/{recorded.result['id']}"
    return recorded.result


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
