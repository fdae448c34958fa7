"""The web app's start page: who is signed in, the launch patient's orders and studies."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.config import Settings
from service.web.render import render
from service.web.session import CurrentSession, UserFhir, save_session
from service.workflows.chart import read_chart

router = APIRouter(prefix="/app", include_in_schema=False)


@router.get("/")
async def home(request: Request, session: CurrentSession, fhir: UserFhir) -> HTMLResponse:
    """The patient's orders (pick one to check) and studies; an auditor without a patient
    context sees the audit view's entry."""
    settings: Settings = request.app.state.settings
    chart = None
    if session.patient_id:
        chart = await read_chart(
            fhir, session.patient_id, max_items=settings.web.max_orders,
            imaging=session.can("ImagingStudy.rs"),
            orders=session.can("MedicationRequest.rs"),
        )  # fmt: skip
    refs: list[str] = []
    if chart is not None:
        refs = [o.reference for o in chart.orders] + [s.reference for s in chart.studies]
    handles = {ref: session.handle(ref) for ref in refs}
    await save_session(request, session)
    return render(request, "home.html", title="Verity", chart=chart, handles=handles)
