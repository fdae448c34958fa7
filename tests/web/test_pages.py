"""The start page and the page rules every page follows: session required, security headers,
no patient data in titles, errors as pages with their code."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import AUDITOR_SCOPES, sign_in

pytestmark = pytest.mark.slow


async def test_no_session_is_a_page_that_says_launch_again(web_app):
    web_app.cookies.clear()
    r = await web_app.get("/app/")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("text/html")
    assert "VERITY-4601" in r.text and "Open Verity again" in r.text


async def test_home_lists_the_launch_patients_orders_active_first(web_app, auth_server, ehr):
    patient = ehr.patient()
    stopped = ehr.order(patient, "00093-0311-01", status="stopped")
    active = ehr.order(patient, "00093-0311-01")
    other = ehr.order(ehr.patient(), "00093-0311-01")
    await sign_in(web_app, auth_server, patient=patient)
    r = await web_app.get("/app/")
    assert r.status_code == 200, r.text
    html = r.text
    assert html.count('<li class="card') == 2  # the other patient's order is not listed
    assert html.index("Active") < html.index("Not active: stopped")
    for ref in (stopped, active, other, patient):  # no FHIR ids in links: opaque handles
        assert ref.split("/")[1] not in html
    title = re.search(r"<title>(.*)</title>", html).group(1)
    assert title == "Verity — Verity"


async def test_every_page_carries_the_security_headers(web_app, auth_server, ehr):
    await sign_in(web_app, auth_server, patient=ehr.patient())
    r = await web_app.get("/app/")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    css = await web_app.get("/app/static/verity.css")
    assert css.status_code == 200 and "cache-control" not in css.headers


async def test_auditor_without_patient_sees_the_audit_entry(web_app, auth_server):
    await sign_in(web_app, auth_server, patient=None, fhir_user="Practitioner/aud-1",
                  scopes=AUDITOR_SCOPES)  # fmt: skip
    r = await web_app.get("/app/")
    assert r.status_code == 200
    assert 'href="/app/audit"' in r.text


async def test_signout_needs_the_form_token_and_ends_the_session(web_app, auth_server, ehr):
    csrf = await sign_in(web_app, auth_server, patient=ehr.patient())
    refused = await web_app.post("/app/signout", data={})
    assert refused.status_code == 403 and "VERITY-4602" in refused.text
    foreign = await web_app.post(
        "/app/signout", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    ok = await web_app.post("/app/signout", data={"csrf_token": csrf})
    assert ok.status_code == 200 and "Signed out" in ok.text
    again = await web_app.get("/app/")
    assert again.status_code == 401


async def test_launch_from_an_unknown_ehr_is_refused_without_contacting_it(web_app):
    r = await web_app.get("/app/launch", params={"iss": "https://evil.example/fhir", "launch": "x"})
    assert r.status_code == 400 and "VERITY-4600" in r.text


async def test_callback_with_a_forged_state_is_refused(web_app):
    r = await web_app.get("/app/callback", params={"state": "forged", "code": "abc"})
    assert r.status_code == 400 and "VERITY-4600" in r.text
