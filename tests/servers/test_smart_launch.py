"""SMART App Launch 2.2 on the real test servers: EHR and standalone launch, PKCE, context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt

from tests.servers.servers import AuthServer, FhirServer
from tests.servers.smart import login_form, pkce_pair, seed_practitioners

P1, P2 = "smart-p1", "smart-p2"
EHR_SCOPE = (
    "launch openid fhirUser patient/MedicationRequest.rs patient/Medication.rs patient/Patient.rs"
)


@pytest.fixture(scope="module")
def seeded(fhir_server: FhirServer) -> FhirServer:
    """Two patients with one order each, a Medication, and the users' Practitioners."""
    seed_practitioners(fhir_server)
    h = {**fhir_server.admin_headers(), "Content-Type": "application/fhir+json"}
    base = fhir_server.base_url
    med = {"resourceType": "Medication", "id": "smart-med", "code": {"text": "metformin 500 mg"}}
    httpx.put(f"{base}/Medication/smart-med", json=med, headers=h).raise_for_status()
    for pid in (P1, P2):
        pat = {"resourceType": "Patient", "id": pid, "active": True}
        httpx.put(f"{base}/Patient/{pid}", json=pat, headers=h).raise_for_status()
        order = {
            "resourceType": "MedicationRequest",
            "id": f"mr-{pid}",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{pid}"},
            "medicationReference": {"reference": "Medication/smart-med"},
        }
        httpx.put(f"{base}/MedicationRequest/mr-{pid}", json=order, headers=h).raise_for_status()
    return fhir_server


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """A cookie-keeping client that does not follow redirects (each hop is asserted)."""
    with httpx.Client(follow_redirects=False, timeout=10) as c:
        yield c


def redirect_uri(auth: AuthServer, client_id: str = "verity-web") -> str:
    return auth.web_clients[client_id].redirect_uris[0]


def authorize(
    c: httpx.Client, auth: AuthServer, scope: str, client_id: str = "verity-web", **extra: str
) -> tuple[httpx.Response, str]:
    """Start an authorization request and follow the server's own hops; returns the last
    response (the login page, an error page, or the redirect to the app) and the verifier."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri(auth, client_id),
        "scope": scope,
        "state": "st-1",
        "aud": auth.fhir_audience,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    params = {k: v for k, v in params.items() if v != ""}
    r = c.get(auth.authorization_endpoint, params=params)
    return follow(c, r, params["redirect_uri"]), verifier


def follow(c: httpx.Client, r: httpx.Response, app_uri: str) -> httpx.Response:
    """Follow redirects inside the authorization server, stopping at the app's redirect URI."""
    for _ in range(10):
        loc = r.headers.get("location")
        if r.status_code not in (302, 303) or loc is None or loc.startswith(app_uri):
            return r
        r = c.get(r.url.join(loc))
    raise AssertionError("redirect loop")


def callback(r: httpx.Response) -> dict[str, str]:
    assert r.status_code in (302, 303), r.text[:300]
    return dict(httpx.URL(r.headers["location"]).params)


def exchange(
    auth: AuthServer, code: str, verifier: str | None, client_id: str = "verity-web"
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(auth, client_id),
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    if auth.web_clients[client_id].key is None:
        data["client_id"] = client_id
    else:
        data["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        data["client_assertion"] = auth.assertion(client_id)
    return httpx.post(auth.token_endpoint, data=data, timeout=10)


def ehr_launch(c: httpx.Client, auth: AuthServer, patient: str, **kw: Any) -> str:
    app = f"http://127.0.0.1:{auth.web_port}/app/launch"
    r = c.get(auth.ehr_launch_url(app, patient, **kw))
    assert r.status_code == 302
    loc = httpx.URL(r.headers["location"])
    assert str(loc.copy_with(query=None)) == app
    assert loc.params["iss"] == auth.fhir_audience
    return str(loc.params["launch"])


def claims(auth: AuthServer, token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, auth.signing_key).claims)


def get(fhir: FhirServer, token: str, path: str) -> httpx.Response:
    h = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{fhir.base_url}/{path}", headers=h, timeout=10)


def test_ehr_launch_gives_context_and_confines_the_token_to_the_patient(
    seeded: FhirServer, browser: httpx.Client
) -> None:
    auth = seeded.auth
    launch = ehr_launch(browser, auth, P1, user="pharmacist", encounter="enc-1")
    r, verifier = authorize(browser, auth, EHR_SCOPE, launch=launch)
    got = callback(r)  # the launch named its user: no login form
    assert got["state"] == "st-1" and got["iss"] == auth.issuer
    t = exchange(auth, got["code"], verifier)
    assert t.status_code == 200, t.text
    body = t.json()
    assert body["patient"] == P1 and body["encounter"] == "enc-1"
    assert body["need_patient_banner"] is True
    assert set(body["scope"].split()) == set(EHR_SCOPE.split())
    assert claims(auth, body["id_token"])["fhirUser"] == "Practitioner/pharm-1"
    at = claims(auth, body["access_token"])
    assert at["aud"] == seeded.base_url and at["patient"] == P1
    assert at["fhirUser"] == "Practitioner/pharm-1"
    token = body["access_token"]
    assert get(seeded, token, f"MedicationRequest/mr-{P1}").status_code == 200
    assert get(seeded, token, f"MedicationRequest/mr-{P2}").status_code == 403
    assert get(seeded, token, f"Patient/{P2}").status_code == 403
    assert get(seeded, token, f"Patient/{P1}").status_code == 200
    assert get(seeded, token, "Medication/smart-med").status_code == 200  # not patient data
    found = get(seeded, token, "MedicationRequest").json()  # narrowed to the patient
    assert [e["resource"]["id"] for e in found["entry"]] == [f"mr-{P1}"]
    assert get(seeded, token, f"MedicationRequest?subject=Patient/{P2}").status_code == 403
    assert get(seeded, token, "MedicationRequest?subject:Patient.name=x").status_code == 403
    assert get(seeded, token, "ImagingStudy").status_code == 403  # scope not asked for


def test_standalone_launch_uses_the_patient_picker(
    seeded: FhirServer, browser: httpx.Client
) -> None:
    auth = seeded.auth
    scope = "openid fhirUser launch/patient patient/MedicationRequest.rs"
    r, verifier = authorize(browser, auth, scope, client_id="verity-web-public")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    form = login_form(r.text)
    assert form.fields == ["user", "patient"]
    assert form.labels == {"user": "User id", "patient": "Patient id"}
    assert form.buttons == ["Sign in"]
    bad = browser.post(r.url, data={"user": "nobody", "patient": P2})
    assert bad.status_code == 401 and 'role="alert"' in bad.text
    r = browser.post(r.url, data={"user": "pharmacist", "patient": P2})
    got = callback(follow(browser, r, redirect_uri(auth, "verity-web-public")))
    t = exchange(auth, got["code"], verifier, client_id="verity-web-public")
    assert t.status_code == 200, t.text
    body = t.json()
    assert body["patient"] == P2 and "encounter" not in body
    token = body["access_token"]
    assert get(seeded, token, f"MedicationRequest/mr-{P2}").status_code == 200
    assert get(seeded, token, f"MedicationRequest/mr-{P1}").status_code == 403


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"code_challenge": "", "code_challenge_method": ""}, "PKCE"),
        ({"code_challenge_method": "plain"}, "code_challenge_method"),
        ({"aud": "http://127.0.0.1:1/fhir"}, "aud"),
        ({"aud": ""}, "aud"),
        ({"launch": "no-such-launch"}, "launch"),
    ],
)
def test_authorization_refused(
    seeded: FhirServer, browser: httpx.Client, extra: dict[str, str], why: str
) -> None:
    r, _ = authorize(browser, seeded.auth, EHR_SCOPE, **extra)
    got = callback(r)
    assert got["error"] == "invalid_request" and why in got["error_description"]
    assert "code" not in got


def test_unknown_redirect_uri_is_not_redirected_to(
    seeded: FhirServer, browser: httpx.Client
) -> None:
    evil = "http://127.0.0.1:9/app/callback"
    r, _ = authorize(browser, seeded.auth, EHR_SCOPE, redirect_uri=evil)
    assert r.status_code == 400 and "location" not in r.headers
    assert "redirect_uri" in r.text


def test_a_launch_id_is_single_use(seeded: FhirServer, browser: httpx.Client) -> None:
    auth = seeded.auth
    launch = ehr_launch(browser, auth, P1, user="pharmacist")
    first, _ = authorize(browser, auth, EHR_SCOPE, launch=launch)
    assert "code" in callback(first)
    again, _ = authorize(browser, auth, EHR_SCOPE, launch=launch)
    assert callback(again)["error"] == "invalid_request"


def test_ehr_launch_refuses_unregistered_apps_and_unknown_users(
    seeded: FhirServer, browser: httpx.Client
) -> None:
    auth = seeded.auth
    ok_app = f"http://127.0.0.1:{auth.web_port}/app/launch"
    assert (
        browser.get(auth.ehr_launch_url("http://evil.test/launch", P1, "pharmacist")).status_code
        == 400
    )
    assert browser.get(auth.ehr_launch_url(ok_app, P1, "nobody")).status_code == 400


@pytest.mark.parametrize("verifier", ["wrong-" + "v" * 43, None])
def test_token_needs_the_right_code_verifier(
    seeded: FhirServer, browser: httpx.Client, verifier: str | None
) -> None:
    auth = seeded.auth
    launch = ehr_launch(browser, auth, P1, user="pharmacist")
    r, _ = authorize(browser, auth, EHR_SCOPE, launch=launch)
    code = callback(r)["code"]
    t = exchange(auth, code, verifier)
    assert t.status_code == 400 and t.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("user", ["auditor", "pharmacist", "libmgr", "radiographer"])
def test_granted_scope_never_exceeds_the_users_allowed_scopes(
    seeded: FhirServer, browser: httpx.Client, user: str
) -> None:
    auth = seeded.auth
    asked = (
        "launch openid fhirUser launch/patient patient/MedicationRequest.rs "
        "patient/ImagingStudy.rs user/Library.cud user/Verification.rs system/Patient.rs"
    )
    launch = ehr_launch(browser, auth, P1, user=user)
    r, verifier = authorize(browser, auth, asked, launch=launch)
    t = exchange(auth, callback(r)["code"], verifier)
    assert t.status_code == 200, t.text
    granted = set(t.json()["scope"].split())
    allowed = set(auth.users[user].scopes.split())
    assert granted == allowed & set(asked.split())
    assert set(claims(auth, t.json()["access_token"])["scope"].split()) <= allowed
    assert ("user/Library.cud" in granted) == (user == "libmgr")


def test_smart_configuration_names_the_authorization_server(seeded: FhirServer) -> None:
    conf = httpx.get(f"{seeded.base_url}/.well-known/smart-configuration", timeout=10).json()
    disc = httpx.get(f"{seeded.auth.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert conf["authorization_endpoint"] == disc["authorization_endpoint"]
    assert conf["token_endpoint"] == disc["token_endpoint"]
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in conf["grant_types_supported"]
    assert {"launch-ehr", "launch-standalone", "context-ehr-patient"} <= set(conf["capabilities"])
