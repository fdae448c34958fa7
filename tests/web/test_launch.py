"""SMART App Launch into Verity over the real test EHR (authorization server + FHIR server):
EHR launch and standalone launch with PKCE, Verity as a confidential client (private_key_jwt),
the token's context kept server side; forged, replayed and foreign launches refused."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.servers.smart import seed_practitioners

pytestmark = pytest.mark.slow


def follow_ehr(url: str, web_url: str, browser: httpx.Client, form: dict[str, str] | None = None):
    """Follow the EHR's redirects (its own cookies kept) until it sends the browser back to
    Verity; a login form on the way is filled with `form`. Returns Verity's path + query."""
    for _ in range(12):
        if url.startswith(web_url):
            parts = urlsplit(url)
            return f"{parts.path}?{parts.query}"
        r = browser.get(url)
        if r.status_code == 200 and "<form" in r.text and form is not None:
            action = r.text.split('action="', 1)[1].split('"', 1)[0]
            r = browser.post(httpx.URL(url).join(action), data=form)
        assert r.status_code in (302, 303), (r.status_code, r.text[:500])
        url = str(httpx.URL(url).join(r.headers["location"]))
    raise AssertionError("the EHR never sent the browser back")


async def launch_from_ehr(web_app, auth_server: Any, web_url: str, patient: str, user: str):
    with httpx.Client(timeout=10) as browser:
        first = browser.get(
            auth_server.ehr_launch_url(f"{web_url}/app/launch", patient.split("/")[1], user)
        )
        assert first.status_code == 302
        launch = urlsplit(first.headers["location"])
        assert launch.path == "/app/launch" and set(parse_qs(launch.query)) == {"iss", "launch"}
        started = await web_app.get(f"{launch.path}?{launch.query}")
        assert started.status_code == 302, started.text
        authorize = parse_qs(urlsplit(started.headers["location"]).query)
        assert authorize["code_challenge_method"] == ["S256"] and authorize["aud"]
        return follow_ehr(started.headers["location"], web_url, browser)


async def test_ehr_launch_signs_the_pharmacist_in_for_the_launch_patient(
    web_app, auth_server, fhir_server, web_url, ehr
):
    seed_practitioners(fhir_server)
    patient = ehr.patient()
    ehr.order(patient, "00093-0311-01")
    web_app.cookies.clear()
    callback = await launch_from_ehr(web_app, auth_server, web_url, patient, "pharmacist")
    done = await web_app.get(callback)
    assert done.status_code == 303 and done.headers["location"] == "/app/"
    set_cookie = done.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "path=/app" in set_cookie
    home = await web_app.get("/app/")
    assert home.status_code == 200, home.text
    assert "Pat Pharmacist" in home.text  # the person: the verified id_token's name
    assert home.text.count('<li class="card') == 1  # the launch patient's one order
    # The callback works once: the same answer again is refused.
    replay = await web_app.get(callback)
    assert replay.status_code == 400 and "VERITY-4600" in replay.text


async def test_a_callback_from_another_browser_is_refused(web_app, auth_server, web_url, ehr):
    """The state is bound to the browser that started the launch (a signed cookie)."""
    patient = ehr.patient()
    web_app.cookies.clear()
    callback = await launch_from_ehr(web_app, auth_server, web_url, patient, "pharmacist")
    web_app.cookies.clear()  # the victim's browser never started this launch
    r = await web_app.get(callback)
    assert r.status_code == 400 and "VERITY-4600" in r.text


async def test_standalone_launch_lets_the_ehr_pick_the_patient(web_app, auth_server, web_url, ehr):
    patient = ehr.patient()
    web_app.cookies.clear()
    started = await web_app.get("/app/launch")
    assert started.status_code == 302
    scope = parse_qs(urlsplit(started.headers["location"]).query)["scope"][0]
    assert "launch/patient" in scope.split()
    with httpx.Client(timeout=10) as browser:
        callback = follow_ehr(
            started.headers["location"], web_url, browser,
            form={"user": "pharmacist", "patient": patient.split("/")[1]},
        )  # fmt: skip
    assert (await web_app.get(callback)).status_code == 303
    home = await web_app.get("/app/")
    assert home.status_code == 200 and "Medication orders" in home.text


async def test_an_ehr_refusal_is_a_page_not_a_session(web_app, auth_server, web_url):
    web_app.cookies.clear()
    started = await web_app.get("/app/launch")
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    r = await web_app.get("/app/callback", params={"state": state, "error": "access_denied"})
    assert r.status_code == 400 and "VERITY-4600" in r.text
    assert (await web_app.get("/app/")).status_code == 401
