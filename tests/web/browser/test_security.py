"""In Chromium: the launch and session refusals a hospital's security review asks about, each
seen as a person would see it (the error page and its code) and checked on the server side."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import Page, expect

from service.store.web_sessions import id_hash
from tests.web.browser.conftest import launch

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def session_cookie(page: Page) -> dict[str, Any] | None:
    return next((dict(c) for c in page.context.cookies() if c["name"] == "verity_session"), None)


def csrf_of(page: Page) -> str:
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


def held_callback(page: Page, live: Any, auth_server: Any, patient: str) -> str:
    """An EHR launch started in `page`'s browser (its launch cookie set there), the EHR's side
    followed outside it: the callback URL the EHR sends back, not yet visited. (Playwright
    cannot stop a browser inside a redirect chain.)"""
    ehr_url = auth_server.ehr_launch_url(f"{live.url}/app/launch", patient.split("/")[1],
                                         "pharmacist")  # fmt: skip
    with httpx.Client(timeout=10) as ehr:
        first = ehr.get(ehr_url)
        assert first.status_code == 302, first.text
        started = page.request.get(str(httpx.URL(ehr_url).join(first.headers["location"])),
                                   max_redirects=0)  # fmt: skip
        assert started.status == 302, started.text()
        assert any(c["name"] == "verity_launch" for c in page.context.cookies())
        url = started.headers["location"]
        for _ in range(8):
            if url.startswith(f"{live.url}/app/callback"):
                return url
            r = ehr.get(url)
            assert r.status_code in (302, 303), r.text
            url = str(httpx.URL(url).join(r.headers["location"]))
    raise AssertionError("the EHR never sent the browser back")


def test_session_cookie_flags_and_page_headers(
    flow: Any, live: Any, auth_server: Any, ehr: Any, watch: Any
) -> None:
    f = flow("security-cookie")
    launch(f.page, auth_server, live, ehr.patient(), "pharmacist")
    cookie = session_cookie(f.page)
    assert cookie is not None
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/app" and cookie["domain"] == "127.0.0.1"
    assert f.page.evaluate("() => document.cookie") == ""  # not readable by scripts
    response = f.page.reload()
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    # The watch sees the launch's requests (EHR and Verity), all on 127.0.0.1 (checked after).
    assert any(u.startswith(f"{live.url}/app/static/") for u in watch.requests)
    assert any(u.startswith(auth_server.issuer) for u in watch.requests)


def test_a_forged_state_is_the_4600_page_and_no_session(flow: Any, live: Any, watch: Any) -> None:
    watch.expected_statuses = True
    f = flow("security-forged-state")
    response = f.page.goto(f"{live.url}/app/callback?state=forged&code=abc")
    assert response is not None and response.status == 400
    expect(f.page.locator("code")).to_have_text("VERITY-4600")
    expect(f.page.get_by_role("alert")).to_be_visible()
    assert session_cookie(f.page) is None
    f.look("refused", mirror=False)


def test_a_callback_in_another_browser_is_refused(
    flow: Any, live: Any, auth_server: Any, ehr: Any, watch: Any
) -> None:
    """The state is bound to the browser that started the launch (its signed launch cookie)."""
    watch.expected_statuses = True
    f = flow("security-other-browser")
    callback = held_callback(f.page, live, auth_server, ehr.patient())
    other = f.mirror  # another context: none of the first browser's cookies
    response = other.goto(callback)
    assert response is not None and response.status == 400
    expect(other.locator("code")).to_have_text("VERITY-4600")
    assert session_cookie(other) is None
    # The state was spent by that attempt: the browser that started it cannot use it either.
    response = f.page.goto(callback)
    assert response is not None and response.status == 400
    assert session_cookie(f.page) is None
    # A callback held the same way, in the browser that started it, signs the person in.
    f.page.goto(held_callback(f.page, live, auth_server, ehr.patient()))
    f.page.wait_for_url(f"{live.url}/app/")
    assert session_cookie(f.page) is not None


def test_the_ehr_refuses_a_code_without_its_pkce_verifier(
    flow: Any, live: Any, auth_server: Any, ehr: Any
) -> None:
    f = flow("security-pkce")
    callback = held_callback(f.page, live, auth_server, ehr.patient())
    query = parse_qs(urlsplit(callback).query)
    code, state = query["code"][0], query["state"][0]
    rows = live.sql("SELECT data->>'code_verifier' FROM web_session WHERE id_hash = %s",
                    id_hash(state))  # fmt: skip
    verifier = rows[0][0]
    form = {
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": f"{live.url}/app/callback",
        "client_assertion_type": ASSERTION_TYPE,
    }  # fmt: skip
    token = auth_server.token_endpoint
    no_verifier = httpx.post(token, data={**form, "client_assertion":
                                          auth_server.assertion("verity-web")}, timeout=10)  # fmt: skip
    assert no_verifier.status_code == 400, no_verifier.text
    assert no_verifier.json()["error"] in ("invalid_grant", "invalid_request")
    wrong = httpx.post(token, data={**form, "code_verifier": verifier[::-1], "client_assertion":
                                    auth_server.assertion("verity-web")}, timeout=10)  # fmt: skip
    assert wrong.status_code == 400 and "access_token" not in wrong.json()
    # The same code with its verifier (kept by Verity for this launch) is what the EHR takes.
    right = httpx.post(token, data={**form, "code_verifier": verifier, "client_assertion":
                                    auth_server.assertion("verity-web")}, timeout=10)  # fmt: skip
    assert right.status_code == 200 and right.json()["access_token"], right.text


def test_the_launch_token_reaches_no_other_patient(
    flow: Any, live: Any, auth_server: Any, ehr: Any, fhir_server: Any
) -> None:
    """The token Verity holds for a launch is the EHR's patient-confined token."""
    mine, theirs = ehr.patient(), ehr.patient()
    my_order, their_order = ehr.order(mine, "00093-0311-01"), ehr.order(theirs, "00093-0311-01")
    f = flow("security-other-patient")
    launch(f.page, auth_server, live, mine, "pharmacist")
    rows = live.sql("SELECT data->>'token' FROM web_session WHERE data->>'csrf' = %s",
                    csrf_of(f.page))  # fmt: skip
    headers = {"Authorization": f"Bearer {rows[0][0]}"}
    base = fhir_server.base_url
    assert httpx.get(f"{base}/{my_order}", headers=headers, timeout=10).status_code == 200
    other = httpx.get(f"{base}/{their_order}", headers=headers, timeout=10)
    assert other.status_code == 403, other.text
    # The page lists this patient's order only, and a made-up handle is not found.
    expect(f.page.locator("#orders-h + ul.cards > li")).to_have_count(1)


def test_a_form_post_without_the_csrf_token_is_refused(
    flow: Any, live: Any, auth_server: Any, ehr: Any
) -> None:
    f = flow("security-csrf")
    launch(f.page, auth_server, live, ehr.patient(), "pharmacist")
    refused = f.page.request.post(f"{live.url}/app/signout", form={"other": "x"})
    assert refused.status == 403 and "VERITY-4602" in refused.text()
    wrong = f.page.request.post(f"{live.url}/app/signout", form={"csrf_token": "forged"})
    assert wrong.status == 403
    # Nothing happened: the session is still there.
    assert f.page.reload() is not None
    expect(f.page.get_by_role("heading", level=1)).to_have_text("Checks for this patient")


def test_an_expired_session_is_the_4601_page_and_the_cookie_is_dropped(
    flow: Any, live: Any, auth_server: Any, ehr: Any, watch: Any
) -> None:
    watch.expected_statuses = True
    f = flow("security-expired")
    launch(f.page, auth_server, live, ehr.patient(), "pharmacist")
    aged = live.sql(
        "UPDATE web_session SET last_seen_at = now() - interval '1 day' "
        "WHERE data->>'csrf' = %s RETURNING 1", csrf_of(f.page),
    )  # fmt: skip
    assert aged == [(1,)]
    response = f.page.reload()
    assert response is not None and response.status == 401
    expect(f.page.locator("code")).to_have_text("VERITY-4601")
    assert session_cookie(f.page) is None
    f.look("expired", mirror=False)
