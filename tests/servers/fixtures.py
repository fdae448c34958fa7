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
    "auth_server",
    "client_pem_env",
    "fhir_server",
    "free_port",
    "lossy_proxy",
    "orthanc",
]
