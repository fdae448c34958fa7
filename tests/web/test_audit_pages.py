"""The audit view against the real app, database, FHIR and authorization servers: search
(criteria kept in the session, never in URLs), keyset paging, one verification with the exact
Bundle written and its delivery, the chart's counts, the CSV export, and the refusals."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, date, datetime

import pytest

from service.config import AuditViewSettings
from service.errors import AuditSearchInvalid
from service.store import outbox
from service.store import verifications as store
from service.verify.imaging.results import (
    CheckResult,
    FindingCode,
    ImagingVerification,
    Outcome,
    StudyCounts,
)
from service.workflows.audit import CSV_COLUMNS, AuditQuery, csv_cell
from service.workflows.audit_chart import period
from service.workflows.decisions import Decision, DecisionView, record_decision
from service.workflows.imaging.summary import to_json as imaging_json
from service.workflows.record import Caller
from tests.web.conftest import AUDITOR_SCOPES, sign_in
from tests.workflows.conftest import PHOTO_A, PHOTO_B, PRODUCT_A, PRODUCT_B, photo

pytestmark = pytest.mark.slow
NDC_A = "00093-0311-01"
NO_AUDIT_SCOPES = "launch openid fhirUser user/Patient.rs user/MedicationRequest.rs"
ROW = re.compile(r'<tr data-verification="([0-9a-f-]{36})">')


async def submit(client, api_token: str, order: str, picture: bytes, **form: str) -> dict:
    """A pill verification through the REST API, as an integration engine sends it."""
    r = await client.post(
        "/v1/medication-verifications",
        files=[("photo", ("p.jpg", picture, "image/jpeg"))],
        data={"medication_request": order, **form},
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def decide(client, verification_id: str, action: str, author: str) -> DecisionView:
    """A person's decision through the decisions workflow (audit row + EHR mitigation write)."""
    app = client.app
    decision = Decision(action, None, author, "A Pharmacist",
                        Caller(author, "verity-web-public", ("user/Verification.rs",)))  # fmt: skip
    view, created = await record_decision(
        app.state.db.pool.connection, app.state.settings, verification_id, decision
    )
    assert created
    return view


async def search(client, csrf: str, **criteria: str) -> list[str]:
    """Post the search form, follow the redirect, return the ids listed (in page order)."""
    r = await client.post("/app/audit", data={"csrf_token": csrf, **criteria})
    assert r.status_code == 303 and r.headers["location"] == "/app/audit", r.text
    page = await client.get("/app/audit")
    assert page.status_code == 200, page.text
    return ROW.findall(page.text)


async def sign_in_auditor(client, auth_server) -> str:
    return await sign_in(client, auth_server, patient=None, fhir_user="Practitioner/aud-1",
                         name="Ann Auditor", scopes=AUDITOR_SCOPES)  # fmt: skip


@pytest.fixture(scope="module")
async def seeded(web_app, api_token, ehr):
    """Patient one: a MATCH and two MISMATCHes (one confirmed by a person: Verity overridden;
    one removed: Verity right); patient two: one MISMATCH, undecided."""
    one, two = ehr.patient(), ehr.patient()
    order_one, order_two = ehr.order(one, NDC_A), ehr.order(two, NDC_A)
    match = await submit(web_app, api_token, order_one, photo(PRODUCT_A, PHOTO_A))
    wrong1 = await submit(web_app, api_token, order_one, photo(PRODUCT_B, PHOTO_B))
    wrong2 = await submit(web_app, api_token, order_one, photo(PRODUCT_B, PHOTO_B))
    other = await submit(web_app, api_token, order_two, photo(PRODUCT_B, PHOTO_B))
    assert [v["verdict"] for v in (match, wrong1, wrong2, other)] == [
        "MATCH", "MISMATCH", "MISMATCH", "MISMATCH"]  # fmt: skip
    decider = f"Practitioner/pharm-{uuid.uuid4().hex[:8]}"
    confirmed = await decide(web_app, wrong1["id"], "confirmed", decider)
    await decide(web_app, wrong2["id"], "removed", "Practitioner/pharm-other")
    return {"one": one, "two": two, "order_one": order_one, "decider": decider,
            "match": match["id"], "wrong1": wrong1["id"], "wrong2": wrong2["id"],
            "other": other["id"], "confirmed_code": confirmed.code}  # fmt: skip


async def test_search_by_patient_verdict_and_decider_returns_exactly_those_rows(
    web_app, auth_server, seeded
):
    csrf = await sign_in_auditor(web_app, auth_server)
    s = seeded
    newest_first = [s["wrong2"], s["wrong1"], s["match"]]
    assert await search(web_app, csrf, patient=s["one"]) == newest_first
    page = (await web_app.get("/app/audit")).text
    assert f'value="{s["one"]}"' in page  # the criteria are shown back from the session
    assert await search(web_app, csrf, patient=s["one"], verdict="MISMATCH") == newest_first[:2]
    assert await search(web_app, csrf, decided_by=s["decider"]) == [s["wrong1"]]
    assert await search(web_app, csrf, order=s["order_one"], kind="pill") == newest_first
    assert await search(web_app, csrf, patient=s["two"]) == [s["other"]]
    assert await search(web_app, csrf, patient=s["two"], kind="imaging") == []
    # bare ids are read as Patient references
    assert await search(web_app, csrf, patient=s["one"].split("/")[1]) == newest_first
    cleared = await web_app.post("/app/audit", data={"csrf_token": csrf, "action": "clear"})
    assert cleared.status_code == 303
    assert f'value="{s["one"]}"' not in (await web_app.get("/app/audit")).text


async def test_paging_walks_every_row_once_even_within_one_instant(web_app, auth_server):
    """Rows inserted in one transaction share created_at: the (created_at, id) cursor keeps
    them apart. Links carry the cursor only."""
    settings = web_app.app.state.settings.web.audit
    patient = f"Patient/paging-{uuid.uuid4().hex[:8]}"
    n = 2 * settings.page_size + 3
    ids = [str(uuid.uuid4()) for _ in range(n)]
    async with web_app.app.state.db.pool.connection() as conn, conn.transaction():
        for vid in ids:
            await store.insert(conn, store.NewVerification(
                id=vid, kind="pill", request_sha256=vid, order_ref="MedicationRequest/p",
                verdict="UNCERTAIN", result={"findings": [], "needs_attention": True},
                patient_ref=patient))  # fmt: skip
    csrf = await sign_in_auditor(web_app, auth_server)
    seen = await search(web_app, csrf, patient=patient)
    page = (await web_app.get("/app/audit")).text
    pages = 1
    while m := re.search(r'<a href="/app/audit\?cursor=([^"]+)" id="audit-older">', page):
        assert "paging" not in m.group(0)
        page = (await web_app.get(f"/app/audit?cursor={html.unescape(m.group(1))}")).text
        seen += ROW.findall(page)
        pages += 1
    assert pages == 3
    assert seen == sorted(ids, reverse=True)  # same instant: id descending, each once
    bad = await web_app.get("/app/audit?cursor=not-a-cursor")
    assert bad.status_code == 400 and "VERITY-4620" in bad.text


async def wait_delivered(client, verification_id: str, timeout: float = 30) -> outbox.OutboxRow:
    for _ in range(int(timeout * 5)):
        async with client.app.state.db.pool.connection() as conn:
            rows = await outbox.for_verification(conn, verification_id)
        if rows and rows[0].status == "delivered":
            return rows[0]
        await asyncio.sleep(0.2)
    raise AssertionError("the relay did not deliver the verification's Bundle in time")


async def test_detail_shows_the_bundle_written_its_delivery_and_the_decision(
    web_app, auth_server, ehr, seeded
):
    row = await wait_delivered(web_app, seeded["wrong1"])
    assert row.fhir_location
    await sign_in_auditor(web_app, auth_server)
    r = await web_app.get(f"/app/audit/{seeded['wrong1']}")
    assert r.status_code == 200, r.text
    page = r.text
    assert re.search(r"<title>Audit: one verification — Verity</title>", page)
    status = re.search(r'data-testid="audit-write-status">([^<]*)<', page).group(1)
    location = re.search(r'data-testid="audit-write-location">([^<]*)<', page).group(1)
    assert status == "delivered" and html.unescape(location) == row.fhir_location
    shown = re.findall(r'<pre class="json">(.*?)</pre>', page, re.S)
    assert json.loads(html.unescape(shown[1])) == row.payload  # the exact Bundle
    types = {e["resource"]["resourceType"] for e in row.payload["entry"]}
    assert {"DetectedIssue", "Provenance"} <= types
    for t in types:
        assert f'<th scope="row">{t}</th>' in page
    issue = ehr.search(f"DetectedIssue?patient={seeded['one']}")
    assert any(row.fhir_location.startswith(f"DetectedIssue/{i['id']}") for i in issue)
    code = seeded["confirmed_code"]
    assert f'data-testid="audit-decision-action">confirmed ({code})' in page
    decision_write = page.split('data-purpose="decision"')[1]  # the mitigation, also shown
    assert '<th scope="row">DetectedIssue</th>' in decision_write
    assert seeded["decider"] in page and "A Pharmacist" in page
    assert "Identified as" in page and "MISMATCH" in page  # per-pill evidence
    async with web_app.app.state.db.pool.connection() as conn:
        recorded = await store.get(conn, seeded["wrong1"])
    caller = page.split('id="audit-caller"')[1]
    assert recorded.caller_client_id and f"<dd>{recorded.caller_client_id}</dd>" in caller
    clean = (await web_app.get(f"/app/audit/{seeded['match']}")).text
    assert 'id="audit-no-writes"' in clean and "not written" in clean
    assert "No decision needed" in clean
    missing = await web_app.get(f"/app/audit/{uuid.uuid4()}")
    assert missing.status_code == 404 and "VERITY-4202" in missing.text


def chart_counts(page: str, chart_id: str) -> Counter[str]:
    svg = re.search(rf'<svg id="{chart_id}".*?</svg>', page, re.S).group(0)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}title").text and root.find(f"{ns}desc").text
    counts: Counter[str] = Counter()
    for rect in root.iter(f"{ns}rect"):
        counts[rect.get("data-series")] += int(rect.get("data-count"))
    return counts


async def test_chart_counts_verdicts_and_overrides_of_the_search(web_app, auth_server, seeded):
    csrf = await sign_in_auditor(web_app, auth_server)
    today = datetime.now(UTC).date().isoformat()
    await search(web_app, csrf, patient=seeded["one"], date_from=today, date_to=today)
    page = (await web_app.get("/app/audit")).text
    assert chart_counts(page, "chart-verdicts") == {"clean": 1, "attention": 2}
    assert chart_counts(page, "chart-decisions") == {"overrides": 1, "upheld": 1}
    rate = re.search(r'id="audit-override-rate">([^<]*)<', page).group(1)
    assert rate == "50.0% (1 of 2 decisions)"
    assert "field measure of Verity's accuracy" in page
    assert f'<th scope="row">{today}</th><td>1</td><td>2</td><td>2</td><td>1</td><td>1</td>' in page
    # the default period (no dates) also holds today
    await search(web_app, csrf, patient=seeded["two"])
    page = (await web_app.get("/app/audit")).text
    assert chart_counts(page, "chart-verdicts") == {"attention": 1}
    assert "no decisions in this period" in page


async def export(client, csrf: str) -> list[list[str]]:
    r = await client.post("/app/audit/export", data={"csrf_token": csrf})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert r.headers["content-disposition"] == f'attachment; filename="verity-audit-{day}.csv"'
    return list(csv.reader(io.StringIO(r.text)))


async def test_csv_holds_the_search_rows_and_runs_no_formula(web_app, auth_server, seeded):
    csrf = await sign_in_auditor(web_app, auth_server)
    listed = await search(web_app, csrf, patient=seeded["one"])
    rows = await export(web_app, csrf)
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[0] for r in rows[1:]] == listed
    by_id = {r[0]: dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
    confirmed = by_id[seeded["wrong1"]]
    assert confirmed["decided_by"] == seeded["decider"] and confirmed["decision"] == "confirmed"
    assert confirmed["patient"] == seeded["one"] and confirmed["verdict"] == "MISMATCH"
    assert by_id[seeded["match"]]["fhir_status"] == "not_written"
    # a value that a spreadsheet would run as a formula is exported as text
    order = f"MedicationRequest/inj-{uuid.uuid4().hex[:8]}"
    async with web_app.app.state.db.pool.connection() as conn:
        await store.insert(conn, store.NewVerification(
            id=str(uuid.uuid4()), kind="pill", request_sha256="x", order_ref=order,
            verdict="UNCERTAIN", patient_ref='=HYPERLINK("http://evil.example","x")',
            result={"findings": ["ORDER_INACTIVE"], "needs_attention": True}))  # fmt: skip
    await search(web_app, csrf, order=order)
    rows = await export(web_app, csrf)
    assert len(rows) == 2
    assert rows[1][CSV_COLUMNS.index("patient")] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows[1][CSV_COLUMNS.index("findings")] == "ORDER_INACTIVE"


def test_csv_cells_that_start_like_a_formula_get_a_quote():
    for text in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("Patient/1") == "Patient/1" and csv_cell(None) == ""


async def test_refusals(web_app, auth_server, ehr, seeded):
    await sign_in(web_app, auth_server, patient=ehr.patient(), scopes=NO_AUDIT_SCOPES)
    for path in ("/app/audit", f"/app/audit/{seeded['match']}"):
        r = await web_app.get(path)
        assert r.status_code == 403 and "VERITY-4030" in r.text, path
    csrf = await sign_in_auditor(web_app, auth_server)
    no_token = await web_app.post("/app/audit/export", data={})
    assert no_token.status_code == 403 and "VERITY-4602" in no_token.text
    no_token = await web_app.post("/app/audit", data={"patient": seeded["one"]})
    assert no_token.status_code == 403 and "VERITY-4602" in no_token.text
    backwards = await web_app.post(
        "/app/audit", data={"csrf_token": csrf, "date_from": "2026-02-02", "date_to": "2026-01-01"}
    )
    assert backwards.status_code == 400 and "VERITY-4620" in backwards.text
    web_app.cookies.clear()
    r = await web_app.post("/app/audit/export", data={"csrf_token": csrf})
    assert r.status_code == 401 and "VERITY-4601" in r.text


async def test_no_patient_data_in_urls_or_logs(web_app, auth_server, seeded, caplog):
    csrf = await sign_in_auditor(web_app, auth_server)
    caplog.set_level(logging.DEBUG)
    await search(web_app, csrf, patient=seeded["one"])
    page = (await web_app.get("/app/audit")).text
    hrefs = re.findall(r'href="([^"]*)"', page)
    pid = seeded["one"].split("/")[1]
    assert hrefs and not any(pid in h for h in hrefs)
    await web_app.post("/app/audit/export", data={"csrf_token": csrf})
    assert not any(pid in r.getMessage() or pid in str(r.__dict__) for r in caplog.records)


async def test_imaging_verification_shows_its_checks_and_its_finding_is_searchable(
    web_app, auth_server
):
    """An imaging result as the imaging workflow stores it (its own JSON shape): the detail
    shows the checks table, and the finding and kind filters find it."""
    checks = [
        CheckResult(FindingCode.LATERALITY_MISMATCH, Outcome.FAILED, "high",
                    "The images are of the left side; the order is for the right.",
                    dicom=("L",), expected=("R",)),
        CheckResult(FindingCode.MODALITY_MISMATCH, Outcome.PASSED, "moderate",
                    "The modality is the one ordered.", dicom=("DX",), expected=("DX",)),
    ]  # fmt: skip
    study = f"ImagingStudy/audit-{uuid.uuid4().hex[:8]}"
    order = f"ServiceRequest/sr-{uuid.uuid4().hex[:8]}"
    v = ImagingVerification(
        id=str(uuid.uuid4()), created_at=datetime.now(UTC), study_ref=study,
        study_uid="1.2.3", checks=checks, counts=StudyCounts(), patient_ref="Patient/img-1",
        order_ref=order,
    )  # fmt: skip
    async with web_app.app.state.db.pool.connection() as conn:
        await store.insert(conn, store.NewVerification(
            id=v.id, kind="imaging", request_sha256=v.id, order_ref=study,
            verdict=v.outcome, result=imaging_json(v), patient_ref=v.patient_ref))  # fmt: skip
    csrf = await sign_in_auditor(web_app, auth_server)
    found = await search(web_app, csrf, order=study, kind="imaging",
                         finding="LATERALITY_MISMATCH", verdict="FAILED")  # fmt: skip
    assert found == [v.id]
    assert await search(web_app, csrf, order=study, finding="MODALITY_MISMATCH") == []
    assert await search(web_app, csrf, order=order, kind="imaging") == [v.id]
    page = (await web_app.get(f"/app/audit/{v.id}")).text
    table = page.split('id="audit-checks"')[1].split("</table>")[0]
    assert '<th scope="row">LATERALITY_MISMATCH</th><td>failed</td>' in table
    assert "<td>L</td><td>R</td>" in table
    assert 'id="audit-pills"' not in page


def test_search_criteria_are_checked_and_the_chart_period_bounded():
    q = AuditQuery.parse({"patient": " 123 ", "verdict": "", "date_from": "2026-01-01"})
    assert q.patient == "Patient/123" and q.verdict is None
    assert AuditQuery.from_session(q.to_session()) == q
    for bad in ({"verdict": "GOOD"}, {"kind": "x"}, {"date_to": "yesterday"},
                {"order": "not a reference"}, {"patient": "P/" + "1" * 300}):  # fmt: skip
        with pytest.raises(AuditSearchInvalid):
            AuditQuery.parse(bad)
    settings = AuditViewSettings(chart_default_days=30, chart_max_days=90)
    today = date(2026, 12, 1)
    assert period(AuditQuery(), settings, today) == (date(2026, 11, 2), today, False)
    long = AuditQuery(date_from=date(2025, 1, 1), date_to=date(2026, 6, 30))
    assert period(long, settings, today) == (date(2026, 4, 2), date(2026, 6, 30), True)
