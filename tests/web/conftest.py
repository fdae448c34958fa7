"""The web app in process, wired to the real authorization and FHIR servers, its own database
and the dev pill library, plus `sign_in`: an active session as the callback would leave it,
holding a real token from the test authorization server (signed with its key) with the
context and scopes a launch grants. The launch itself is tested in test_launch.py and in the
browser tests; page tests start from a signed-in session."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from service.config import OutboxSettings, WebSettings
from service.evaluation.pills import read_dataset
from service.store import migrate, web_sessions
from service.web.security import SESSION_COOKIE
from service.workflows.pills.enrol import enrol_products
from tests.conftest import SHARED_DATA, api_settings, app_client
from tests.workflows.conftest import Ehr

# What the EHR grants a pharmacist launching Verity from a chart (FHIR scopes as user/ here:
# the FHIR server's patient-compartment rules are tested in tests/servers).
PHARMACIST_SCOPES = (
    "launch openid fhirUser user/Patient.rs user/MedicationRequest.rs user/Medication.rs "
    "user/ImagingStudy.rs user/Verification.rs"
)
LIBRARY_MANAGER_SCOPES = PHARMACIST_SCOPES + " user/Library.cud user/Library.rs"
AUDITOR_SCOPES = "openid fhirUser user/Verification.rs"


def web_settings(public_url: str, auth_server: Any, **overrides: Any) -> WebSettings:
    """Verity registered at the test EHR as the confidential client `verity-web`."""
    client = auth_server.web_clients["verity-web"]
    values: dict[str, Any] = {
        "enabled": True,
        "public_url": public_url,
        "client_id": client.client_id,
        "private_key": SecretStr(client.private_pem().decode()),
        "key_id": client.kid,
        "signing_alg": client.alg,
        "session_secret": SecretStr(secrets.token_urlsafe(32)),
        "cookie_secure": False,  # httpx's cookie jar sends no Secure cookie over http
    }
    values.update(overrides)
    return WebSettings(**values)


@pytest.fixture(scope="session")
def web_url(auth_server: Any) -> str:
    """Where the web app is reached: the port the authorization server registered for it."""
    return f"http://127.0.0.1:{auth_server.web_port}"


@pytest.fixture(scope="session")
async def web_db(make_database: Any) -> str:
    url: str = make_database("web")
    await migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
async def web_app(
    web_db: str, web_url: str, auth_server: Any, fhir_server: Any, api_token: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The app with the web pages on, its library enrolled from the dev pill set."""
    settings = api_settings(
        web_db, auth_server, tmp_path_factory.mktemp("web"),
        fhir=fhir_server.settings_for("verity-rs384", max_retries=1, timeout_s=5,
                                      connect_timeout_s=1),
        outbox=OutboxSettings(poll_interval_s=0.1, backoff_base_s=0.2, backoff_max_s=1.0),
        web=web_settings(web_url, auth_server),
    )  # fmt: skip
    async with app_client(settings, api_token, timeout=120) as client:
        client.base_url = httpx.URL(web_url)
        client.headers.pop("Authorization")  # pages use the session, never a bearer token
        pills = client.app.state.pills
        entries = ((d.product, d.reference_images()) for d in read_dataset(SHARED_DATA / "pills"))
        await enrol_products(pills, client.app.state.db.pool.connection, entries)
        yield client


@pytest.fixture(scope="session")
def ehr(fhir_server: Any) -> Ehr:
    return Ehr(fhir_server)


def user_token(auth_server: Any, *, patient: str | None, fhir_user: str, scopes: str) -> str:
    """A real access token of the test authorization server for the FHIR server."""
    now = int(time.time())
    claims = {
        "iss": auth_server.issuer, "aud": auth_server.fhir_audience, "iat": now,
        "exp": now + 3600, "jti": uuid.uuid4().hex, "scope": scopes, "client_id": "verity-web",
        "sub": fhir_user, "fhirUser": fhir_user,
    }  # fmt: skip
    if patient:
        claims["patient"] = patient
    return str(auth_server.sign(claims))


async def sign_in(
    client: httpx.AsyncClient,
    auth_server: Any,
    *,
    patient: str | None,
    fhir_user: str = "Practitioner/pharm-1",
    name: str = "Pat Pharmacist",
    scopes: str = PHARMACIST_SCOPES,
    session_s: int = 3600,
) -> str:
    """Start an active session as /app/callback would, set its cookie on `client`, and return
    its CSRF token (for forms). `patient` is an id (or "Patient/<id>")."""
    pid = patient.split("/", 1)[1] if patient and "/" in patient else patient
    session_id = secrets.token_urlsafe(32)
    data = {
        "token": user_token(auth_server, patient=pid, fhir_user=fhir_user, scopes=scopes),
        "token_expires_at": time.time() + session_s, "scopes": sorted(scopes.split()),
        "patient": pid, "encounter": None, "fhir_user": fhir_user, "user_name": name,
        "need_patient_banner": True, "csrf": secrets.token_urlsafe(32), "handles": {},
    }  # fmt: skip
    app = client.app  # type: ignore[attr-defined]
    async with app.state.db.pool.connection() as conn:
        await web_sessions.create(conn, session_id, "active", data, timedelta(seconds=session_s))
    client.cookies.set(SESSION_COOKIE, app.state.web_signer.session(session_id), path="/app")
    return str(data["csrf"])


# The imaging check pages need a PACS: the same app as `web_app` with its own database, Orthanc
# as the allow-listed DICOMweb server and the imaging worker running (the e2e settings).
@pytest.fixture(scope="session")
async def imaging_web_app(
    make_database: Any, web_url: str, auth_server: Any, fhir_server: Any, orthanc: Any,
    api_token: str, tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    from service.config import PacsSettings
    from tests.workflows.test_imaging_e2e import imaging_settings

    url: str = make_database("imaging_web")
    await migrate.upgrade(url)
    settings = api_settings(
        url, auth_server, tmp_path_factory.mktemp("imaging_web"),
        fhir=fhir_server.settings_for("verity-rs384", max_retries=1, timeout_s=5,
                                      connect_timeout_s=1),
        outbox=OutboxSettings(poll_interval_s=0.1, backoff_base_s=0.2, backoff_max_s=1.0),
        pacs=PacsSettings(base_url=orthanc.base_url, max_retries=1, backoff_base_s=0.05,
                          timeout_s=5, connect_timeout_s=1),
        imaging=imaging_settings(), web=web_settings(web_url, auth_server),
    )  # fmt: skip
    async with app_client(settings, api_token, timeout=120) as client:
        client.base_url = httpx.URL(web_url)
        client.headers.pop("Authorization")
        yield client
