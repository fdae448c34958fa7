"""The imaging check pages: a study as the EHR has it (and a button to check it), the check's
live progress, then its result (the table of checks, findings, thumbnails) and the person's
decision on a study that needs attention. Thin: parse, call a workflow, render."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from service.config import Settings
from service.errors import FormCheckFailed, OutsideLaunchContext, RouteNotFound
from service.store.jobs import JobRow
from service.web.render import render
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
from service.workflows.chart import banner
from service.workflows.decisions import decision_for, record_decision
from service.workflows.imaging import review
from service.workflows.imaging.study_view import earlier_checks, read_study_view, start_check

router = APIRouter(prefix="/app", include_in_schema=False)
STUDY_SCOPE = "ImagingStudy.rs"
# The person's decision in a radiographer's words (service/workflows/decisions.py ACTIONS).
DECISION_LABELS = {
    "confirmed": "Confirmed correct: these are the right images for this order",
    "removed": "Wrong images removed from the study",
    "returned": "Sent back for correction (to the modality or the PACS team)",
    "other": "Other (say what was done)",
}


def _study_ref(session: WebSession, handle: str) -> str:
    session.require(STUDY_SCOPE)
    ref = session.resolve(handle)
    if not ref.startswith("ImagingStudy/"):
        raise RouteNotFound("no such study in this session; go back to the list")
    return ref


def may_see(session: WebSession, job: JobRow) -> None:
    """The launch patient's checks only; without a launch patient, an auditor's (Verification.rs).
    A check not started yet has no patient: it must be of a study this session was shown."""
    if job.patient_ref is None and session.patient_id is not None:
        if job.study_ref not in (session.data.get("handles") or {}).values():
            raise OutsideLaunchContext("that belongs to another patient than this launch's")
        return
    session.require_reader(job.patient_ref)


@router.get("/studies/{handle}")
async def study_page(
    request: Request, handle: str, session: CurrentSession, fhir: UserFhir
) -> HTMLResponse:
    """The study as the EHR has it, Verity's earlier checks, and the "Check this study" form."""
    settings: Settings = request.app.state.settings
    ref = _study_ref(session, handle)
    study = await read_study_view(fhir, ref)
    session.require_patient(study.patient_ref)
    patient = banner(await fhir.read("Patient", str(session.patient_id)))
    checks = await earlier_checks(connector(request), ref, limit=settings.web.max_orders)
    return render(
        request, "imaging_study.html", title="Imaging check", patient=patient, study=study,
        handle=handle, checks=checks, nonce=uuid.uuid4().hex,
    )  # fmt: skip


@router.post("/studies/{handle}/check")
async def check_study(request: Request, handle: str, session: FormSession) -> Response:
    """Queue the same job as POST /v1/imaging-verifications; 303 to its progress page."""
    ref = _study_ref(session, handle)
    nonce = (await request.form()).get("nonce")
    if not isinstance(nonce, str) or not NONCE.match(nonce):
        raise FormCheckFailed("the form's one-time number is missing; reload the page")
    if session.patient_id is None:
        raise OutsideLaunchContext("a study is checked from its patient's chart")
    job, _ = await start_check(connector(request), ref, nonce, session.caller)
    return RedirectResponse(f"/app/imaging/{job.id}", status_code=303)


@router.get("/imaging/{verification_id}")
async def imaging_page(
    request: Request, verification_id: VerificationId, session: CurrentSession, fhir: UserFhir
) -> HTMLResponse:
    """Progress while the check runs (refresh, or verity.js polls); the result once done."""
    job, found = await review.load(connector(request), verification_id)
    may_see(session, job)
    text, _ = review.progress_text(job)
    handle = session.handle(job.study_ref) if session.patient_id else None
    await save_session(request, session)
    patient = banner(await fhir.read("Patient", session.patient_id)) if session.patient_id else None
    if found is None:
        return render(request, "imaging_progress.html", title="Imaging check", job=job,
                      text=text, patient=patient, handle=handle)  # fmt: skip
    decision = await decision_for(connector(request), job.id) if found.needs_decision else None
    return render(
        request, "imaging_result.html", title="Imaging check result", job=job, review=found,
        patient=patient, handle=handle, decision=decision, labels=DECISION_LABELS,
        may_decide=session.patient_id is not None,
    )  # fmt: skip


@router.get("/imaging/{verification_id}/progress")
async def imaging_progress(
    request: Request, verification_id: VerificationId, session: CurrentSession
) -> JSONResponse:
    """`{text, done}` for verity.js's data-progress-url."""
    job, _ = await review.load(connector(request), verification_id)
    may_see(session, job)
    text, done = review.progress_text(job)
    return JSONResponse({"text": text, "done": done, "state": job.state})


@router.post("/imaging/{verification_id}/decision")
async def imaging_decision(
    request: Request, verification_id: VerificationId, session: FormSession
) -> Response:
    """The person's decision on a study that needs attention -> audit + DetectedIssue.mitigation."""
    settings: Settings = request.app.state.settings
    job, _ = await review.load(connector(request), verification_id)
    may_see(session, job)
    decision = await posted_decision(request, session)
    await record_decision(connector(request), settings, job.id, decision)
    return RedirectResponse(f"/app/imaging/{job.id}#decision", status_code=303)


@router.get("/verifications/{verification_id}/thumbnails/{number}")
async def thumbnail(
    request: Request,
    verification_id: VerificationId,
    number: Annotated[int, Path(ge=1, le=64)],
    session: CurrentSession,
) -> Response:
    """One windowed thumbnail of a checked image, for whoever may see the verification."""
    job, _ = await review.load(connector(request), verification_id)
    may_see(session, job)
    found = await review.thumbnail(connector(request), job.id, number)
    if found is None:
        raise RouteNotFound("no such thumbnail")
    media_type, data = found
    return Response(data, media_type=media_type)
