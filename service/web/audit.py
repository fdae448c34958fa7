"""The audit view for reviewers: search every verification, open one in full (evidence, the
exact FHIR writes and their delivery, the decision), a chart of verdicts and overrides per
day, and the search as CSV. Needs the person's Verification.rs; no patient context needed.

No patient data in URLs: a GET search form would put the patient reference in the address
bar, the browser history and the server logs. So the search is a POST form (CSRF-checked)
whose criteria are kept in the server-side session and shown back; the paging links carry
only an opaque cursor (a time and a Verity id), and the CSV export is a POST that uses the
criteria the session keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from service.config import Settings
from service.web.charts import Series, stacked_bars
from service.web.render import render
from service.web.session import (
    CurrentSession,
    FormSession,
    WebSession,
    connector,
    save_session,
)
from service.workflows.audit import (
    FINDINGS,
    KINDS,
    VERDICTS,
    AuditQuery,
    csv_filename,
    csv_lines,
    search,
)
from service.workflows.audit_chart import ChartData, daily
from service.workflows.audit_detail import detail

router = APIRouter(prefix="/app/audit", include_in_schema=False)
SCOPE = "Verification.rs"
SESSION_KEY = "audit"


def _query(session: WebSession) -> AuditQuery:
    return AuditQuery.from_session(session.data.get(SESSION_KEY))


@router.get("")
async def audit_search(
    request: Request, session: CurrentSession, cursor: str | None = None
) -> HTMLResponse:
    """The search form (criteria from the session), one page of results and the chart."""
    session.require(SCOPE)
    settings: Settings = request.app.state.settings
    query = _query(session)
    page = await search(connector(request), query, settings.web.audit, cursor)
    today = datetime.now(UTC).date()
    chart = await daily(connector(request), query, settings.web.audit, today)
    return render(
        request, "audit_search.html", title="Audit", query=query, form=query.form_values(),
        page=page, cursor=cursor, chart=chart, svgs=_svgs(chart), kinds=KINDS,
        verdicts=VERDICTS, findings=FINDINGS, utc=UTC,
    )  # fmt: skip


@router.post("")
async def audit_search_post(request: Request, session: FormSession) -> RedirectResponse:
    """Keep the criteria in the session (or clear them), then show the first page."""
    session.require(SCOPE)
    form = await request.form()
    if form.get("action") == "clear":
        criteria: dict[str, str] = {}
    else:
        criteria = AuditQuery.parse(dict(form)).to_session()
    if session.data.get(SESSION_KEY) != criteria:
        session.data[SESSION_KEY] = criteria
        session.changed = True
    await save_session(request, session)
    return RedirectResponse("/app/audit", status_code=303)


@router.post("/export")
async def audit_export(request: Request, session: FormSession) -> StreamingResponse:
    """The session's current search as CSV: every matching row, bounded by a setting."""
    session.require(SCOPE)
    settings: Settings = request.app.state.settings
    name = csv_filename(datetime.now(UTC).date())
    return StreamingResponse(
        csv_lines(connector(request), _query(session), settings.web.audit),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/{verification_id}")
async def audit_verification(
    request: Request, session: CurrentSession, verification_id: str
) -> HTMLResponse:
    """One verification in full, with the exact FHIR resources written and their delivery."""
    session.require(SCOPE)
    item = await detail(connector(request), verification_id)
    return render(request, "audit_detail.html", title="Audit: one verification", item=item, utc=UTC)


def _svgs(chart: ChartData) -> dict[str, object]:
    """The two charts of the period: verdicts, and what people decided."""
    labels = [d.day.isoformat() for d in chart.days]
    period = f"{chart.start.isoformat()} to {chart.end.isoformat()} (UTC days)"
    verdicts = stacked_bars(
        "chart-verdicts", "Verdicts per day",
        f"Verifications per day from {period}: clean, and needing attention, stacked.",
        labels, [
            Series("clean", "clean", "#0f6b2f", [d.clean for d in chart.days]),
            Series("attention", "needs attention", "#b35400", [d.attention for d in chart.days]),
        ],
    )  # fmt: skip
    decisions = stacked_bars(
        "chart-decisions", "Human decisions per day",
        f"Decisions per day of the verification from {period}: Verity overridden, Verity "
        "right, and other decisions, stacked.",
        labels, [
            Series("overrides", "Verity overridden", "#a4161a", [d.overrides for d in chart.days]),
            Series("upheld", "Verity right", "#0b57a4", [d.upheld for d in chart.days]),
            Series("other", "other decision", "#595959",
                   [d.decisions - d.overrides - d.upheld for d in chart.days]),
        ],
    )  # fmt: skip
    return {"verdicts": verdicts, "decisions": decisions}
