"""Medication check pages: an order (take or upload photos), the recorded verdict with the
pictures side by side, the person's decision on what needs attention, and a confirmed photo
accepted into the library by a library manager. Thin: forms in, workflows called, pages out."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from service.deps import Pills, Settings
from service.errors import (
    IdempotencyConflict,
    ImageCorrupt,
    ImageEmpty,
    ImageTooLarge,
    ImageTooSmall,
    NoPillFound,
    PayloadTooLarge,
    RequestInvalid,
    RouteNotFound,
    TooManyPills,
    UnsupportedMediaType,
    VerityError,
)
from service.web.render import product_label, render
from service.web.session import (
    NONCE,
    CurrentSession,
    FormSession,
    UserFhir,
    VerificationId,
    WebSession,
    connector,
    posted_decision,
    save_session,
)
from service.workflows.decisions import record_decision
from service.workflows.pills import review
from service.workflows.pills.learning import accept_reference
from service.workflows.pills.submit import MedicationSubmission, submit_medication

router = APIRouter(prefix="/app", include_in_schema=False)

UPLOAD_ERRORS = (
    ImageEmpty, UnsupportedMediaType, ImageTooLarge, ImageCorrupt, NoPillFound, TooManyPills,
    ImageTooSmall, RequestInvalid, PayloadTooLarge, IdempotencyConflict,
)  # fmt: skip
PictureName = Annotated[str, Path(pattern=r"^(photo|pill)-[0-9]{1,3}$")]
DECISION_LABELS = {
    "confirmed": "Confirmed correct: the pill is the ordered product",
    "removed": "Wrong product removed",
    "returned": "Sent back to pharmacy",
    "other": "Other (give the reason)",
}


async def _order_page(
    request: Request, session: WebSession, fhir: UserFhir, handle: str,
    error: VerityError | None = None,
) -> HTMLResponse:  # fmt: skip
    reference = session.resolve(handle)
    if not reference.startswith("MedicationRequest/"):
        raise RouteNotFound("no such order in this session; go back to the list")
    order = await review.order_view(fhir, connector(request), reference)
    session.require_patient(order.patient_ref)  # checks are made in a patient launch only
    patient = await review.patient_banner(fhir, session.patient_id)
    return render(
        request, "medication_order.html", title="Medication check",
        status=error.status if error else 200, order=order, handle=handle, patient=patient,
        nonce=secrets.token_urlsafe(24), error=error,
    )  # fmt: skip


@router.get("/orders/{handle}")
async def order_page(
    request: Request, handle: str, session: CurrentSession, fhir: UserFhir
) -> HTMLResponse:
    """The order, its library products with a picture each, and the photo form."""
    return await _order_page(request, session, fhir, handle)


@router.post("/orders/{handle}/check", response_model=None)
async def check(
    request: Request, handle: str, session: FormSession, fhir: UserFhir, pills: Pills,
    settings: Settings,
) -> Response:  # fmt: skip
    """Run the same workflow as the REST API with the person's EHR access; upload errors come
    back as the form with their words and code, nothing recorded."""
    reference = session.resolve(handle)
    if not reference.startswith("MedicationRequest/"):
        raise RouteNotFound("no such order in this session; go back to the list")
    form = await request.form()
    try:
        nonce = str(form.get("nonce") or "")
        if not NONCE.match(nonce):
            raise RequestInvalid("the form is out of date: reload the page and send it again")
        session.require_patient(await review.order_patient(fhir, reference))
        uploads = [u for u in form.getlist("photo") if isinstance(u, UploadFile) and u.filename]
        photos = [await u.read(settings.limits.max_image_bytes + 1) for u in uploads]
        result, _ = await submit_medication(
            pills, settings, fhir, connector(request),
            MedicationSubmission(
                medication_request=reference, photos=photos, patient=session.patient_ref,
                idempotency_key=f"web-{nonce}", caller=session.caller,
            ),
        )  # fmt: skip
    except UPLOAD_ERRORS as exc:
        return await _order_page(request, session, fhir, handle, error=exc)
    finally:
        await form.close()  # the uploads' temporary files
    return RedirectResponse(f"/app/verifications/{result['id']}", status_code=303)


@router.get("/verifications/{verification_id}")
async def result_page(
    request: Request, verification_id: VerificationId, session: CurrentSession, fhir: UserFhir
) -> HTMLResponse:
    """The verdict in words, the pictures side by side, the evidence, the decision."""
    view = await review.verification_view(connector(request), verification_id)
    session.require_reader(view.patient_ref)
    own = session.patient_ref is not None and session.patient_ref == view.patient_ref
    order_handle = session.handle(view.result["order_ref"]) if own else None
    await save_session(request, session)
    return render(
        request, "medication_result.html", title="Medication check result", v=view,
        patient=await review.patient_banner(fhir, session.patient_id), own=own,
        order_handle=order_handle, labels=DECISION_LABELS, can_learn=session.can("Library.cud"),
        words=verdict_words(view.result),
    )  # fmt: skip


def verdict_words(result: dict[str, Any]) -> str:
    """The verdict as a pharmacist reads it."""
    verdict = str(result["verdict"])
    if verdict == "MISMATCH":
        names = [
            product_label(c["product"])
            for p in result.get("pills") or []
            if p["verdict"] == "MISMATCH"
            for c in (p.get("candidates") or [])[:1]
        ]  # fmt: skip
        looks = f": it looks like {', '.join(dict.fromkeys(names))}" if names else ""
        return f"This is NOT the ordered product{looks}"
    return {
        "MATCH": "This is the ordered product",
        "UNCERTAIN": "Verity is not sure: a person must look",
        "NOT_IN_LIBRARY": "Verity cannot recognise the ordered product (no reference pictures "
        "in the library): a person must look",
        "NO_PILL_FOUND": "No pill found in the photos: take them again",
    }.get(verdict, verdict)


@router.get("/verifications/{verification_id}/images/{name}")
async def kept_picture(
    request: Request, verification_id: VerificationId, name: PictureName, session: CurrentSession
) -> Response:
    """A photo or pill picture kept with the verification, for whoever may see it."""
    connect = connector(request)
    session.require_reader(await review.verification_patient(connect, verification_id))
    image = await review.kept_picture(connect, verification_id, name)
    return Response(image.data, media_type=image.media_type)


@router.get("/references/{image_id}")
async def reference_picture(
    request: Request, image_id: Annotated[int, Path(ge=1, le=2**62)], session: CurrentSession
) -> Response:
    """A library reference picture (a product, no patient data): any signed-in person."""
    kind, data = await review.reference_picture(connector(request), image_id)
    return Response(data, media_type=kind)


@router.post("/verifications/{verification_id}/decision")
async def decide(
    request: Request, verification_id: VerificationId, session: FormSession, settings: Settings
) -> RedirectResponse:
    """Record the person's decision (kept in the audit, written to the EHR as mitigation)."""
    connect = connector(request)
    session.require_patient(await review.verification_patient(connect, verification_id))
    decision = await posted_decision(request, session)
    await record_decision(connect, settings, verification_id, decision)
    return RedirectResponse(f"/app/verifications/{verification_id}#decision", status_code=303)


@router.post("/verifications/{verification_id}/references")
async def accept(
    request: Request, verification_id: VerificationId, session: FormSession, pills: Pills,
    fhir: UserFhir,
) -> RedirectResponse:  # fmt: skip
    """A library manager accepts a confirmed photo as a reference view of an ordered product."""
    session.require("Library.cud")
    connect = connector(request)
    session.require_reader(await review.verification_patient(connect, verification_id))
    form = await request.form()
    await accept_reference(
        pills, connect, verification_id, str(form.get("photo") or ""),
        str(form.get("product") or ""), session.fhir_user or session.caller.subject or "unknown",
        fhir,
    )  # fmt: skip
    return RedirectResponse(f"/app/verifications/{verification_id}#learning", status_code=303)
