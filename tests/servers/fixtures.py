"""Pytest plugin: real authorization + FHIR servers on 127.0.0.1, started once per session.

Register from tests/conftest.py with ``pytest_plugins = ["tests.servers.fixtures"]``.
Install first with ``bash tests/servers/install.sh`` (npm ci). Keys are generated at test
time, and never written outside the session's temporary directory.

Fixtures (session-scoped):
    auth_server   AuthServer: issuer, token_endpoint, jwks_uri, clients (id -> Client with key,
                  kid, alg, private_pem()), mint_token(client_id, scope, resource), sign(claims)
    fhir_server   FhirServer: base_url, port, settings_for(client_id, ...) -> FhirSettings,
                  admin_headers(), stop()/start()/restart() (in memory: data is NOT kept)
    lossy_proxy   LossyProxy in front of fhir_server: base_url, drop_next(n, method) forwards
                  the next n requests and closes the connection without the response
    orthanc       OrthancServer (tests/servers/orthanc.py): Orthanc + DICOMweb plugin, no auth;
                  base_url, stow(paths), delete_all(), requests_seen(), stop()/start()

SMART launch in the test servers (SMART App Launch 2.2; tests/servers/smart_launch.mjs, smart.py):
    The authorization server plays the EHR for browser-facing apps: authorization code with PKCE
    (S256 only, always required), `aud` must be the FHIR base (fhir_server.base_url), access
    tokens are JWTs for that audience carrying `patient` and `fhirUser` claims.
    auth_server.web_port     port reserved for the web app under test (nothing listens on it)
    auth_server.web_clients  id -> WebClient (client_id, redirect_uris, key, kid, alg,
                  private_pem()): "verity-web" (private_key_jwt, ES384; auth_server.assertion(
                  "verity-web") makes its client assertion) and "verity-web-public" (none);
                  both redirect to http://127.0.0.1:{web_port}/app/callback and
                  http://localhost:{web_port}/app/callback
    auth_server.users        id -> User (fhir_user, name, scopes it may be granted):
                  "pharmacist" (Practitioner/pharm-1), "libmgr" (Practitioner/lib-1, adds
                  user/Library.cud user/Library.rs), "radiographer" (Practitioner/rad-1),
                  "auditor" (Practitioner/aud-1: openid fhirUser user/Verification.rs)
    auth_server.authorization_endpoint   from discovery ({issuer}/auth); also in the FHIR
                  server's /fhir/.well-known/smart-configuration with the SMART capabilities
    auth_server.ehr_launch_url(app_launch_url, patient, user, encounter=None) -> str
                  GET it (browser): 302 to app_launch_url?iss=<FHIR base>&launch=<id>; the id is
                  single-use, lives 300 s, and binds patient, encounter and user. app_launch_url
                  must share an origin with a registered redirect URI. The user is signed in
                  already: the authorization completes without a form.
    Login form    standalone launch (no `launch`): GET /interaction/<uid> is an HTML form,
                  fields `user` (label "User id") and, when `launch/patient` was asked,
                  `patient` (label "Patient id", the patient picker); submit button "Sign in".
                  A wrong user answers 401 with the form and a role="alert" message.
    Consent       automatic: granted scope = asked scope & the user's scopes. Token response
                  (authorization_code): access_token, id_token (fhirUser claim), scope,
                  patient, encounter (when the launch had one), need_patient_banner: true.
                  No refresh tokens: none of the four users may have offline_access (and
                  oidc-provider also wants prompt=consent for it; not exercised).
    FHIR server   patient/ scopes reach the token's patient only: reads of patient-compartment
                  resources of another patient, and searches naming another patient, are 403;
                  a search without patient/subject is narrowed to the patient. user/ and
                  system/ scopes reach everything, as before.
    seed_practitioners(fhir_server)   PUTs the users' Practitioners (tests/servers/smart.py)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.orthanc import OrthancServer, start_orthanc
from tests.servers.proxy import LossyProxy
from tests.servers.servers import (
    API_AUDIENCE,
    AuthServer,
    Client,
    FhirServer,
    client_pem_env,
    free_port,
    start_auth_server,
    start_fhir_server,
)
from tests.servers.smart import User, WebClient, seed_practitioners


@pytest.fixture(scope="session")
def test_servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def auth_server(test_servers_dir: Path) -> Iterator[AuthServer]:
    server = start_auth_server(test_servers_dir)
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def fhir_server(auth_server: AuthServer, test_servers_dir: Path) -> Iterator[FhirServer]:
    server = start_fhir_server(auth_server, test_servers_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lossy_proxy(fhir_server: FhirServer) -> Iterator[LossyProxy]:
    proxy = LossyProxy(fhir_server.port)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def orthanc(test_servers_dir: Path) -> Iterator[OrthancServer]:
    """Fails (never skips) when Orthanc or its DICOMweb plugin is not installed."""
    server = start_orthanc(test_servers_dir / "orthanc")
    yield server
    server.stop()


__all__ = [
    "API_AUDIENCE",
    "AuthServer",
    "Client",
    "FhirServer",
    "LossyProxy",
    "OrthancServer",
    "User",
    "WebClient",
    "auth_server",
    "client_pem_env",
    "fhir_server",
    "free_port",
    "lossy_proxy",
    "orthanc",
    "seed_practitioners",
]
