"""Pytest plugin: real authorization + FHIR servers on 127.0.0.1, started once per session.

Register from tests/conftest.py with ``pytest_plugins = ["tests.servers.fixtures"]``.
Install first with ``bash tests/servers/install.sh`` (npm ci). Keys are generated here, at test
time, and never written outside the session's temporary directory.

Fixtures (session-scoped):
    auth_server   AuthServer: issuer, token_endpoint, jwks_uri, clients, mint_token(), sign()
    fhir_server   FhirServer: base_url, stop()/start()/restart() (in-memory: data is NOT kept)
    lossy_proxy   LossyProxy in front of fhir_server: base_url, drop_next(n) drops responses
                  after the FHIR server has committed the request
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

HERE = Path(__file__).resolve().parent
API_AUDIENCE = "urn:verity:api"

# SMART v2 scopes Verity asks for (service/config.py FhirSettings.scopes) plus v1 forms.
FHIR_SCOPES = (
    "system/MedicationRequest.rs system/Medication.rs system/Patient.rs "
    "system/ImagingStudy.rs system/Endpoint.rs system/DetectedIssue.cru "
    "system/DiagnosticReport.cru system/Observation.cru system/Provenance.cr system/Device.cru "
    "system/DetectedIssue.cu system/DiagnosticReport.cu system/Provenance.c "
    "system/DetectedIssue.rs system/Provenance.rs"
)
ADMIN_SCOPES = "system/*.cruds system/*.read system/*.write"
API_SCOPES = (
    "system/Verification.c system/Verification.rs system/Verification.crs "
    "system/Library.cruds system/Outbox.rs system/Outbox.u user/Verification.rs "
    "system/Verification.read system/*.read"
)


def _node() -> str:
    """Node binary: a project-local one (npm package `node`) wins over the PATH."""
    local = HERE / "node_modules" / ".bin" / "node"
    found = str(local) if local.exists() else shutil.which("node")
    if not found:
        raise RuntimeError("node not found; run tests/servers/install.sh")
    if not (HERE / "node_modules").exists():
        raise RuntimeError("test servers not installed; run bash tests/servers/install.sh")
    return found


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (released before the server binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Poll until the server answers, failing fast with its log if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1.0)
            return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout}s: {log.read_text()[-2000:]}")


class NodeServer:
    """One node process with a JSON config file, stoppable and restartable on the same port."""

    def __init__(self, script: str, config: dict[str, Any], workdir: Path, ready_url: str):
        self.script, self.config, self.workdir, self.ready_url = script, config, workdir, ready_url
        self.config_path = workdir / f"{Path(script).stem}.json"
        self.log_path = workdir / f"{Path(script).stem}.log"
        self.config_path.write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [_node(), str(HERE / self.script), str(self.config_path)],
            cwd=HERE,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        _wait_http(self.ready_url, self.proc, self.log_path)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Client:
    """A registered client and its private key (PEM/JWK available for SmartClient settings)."""

    client_id: str
    alg: str
    key: RSAKey | ECKey
    scope: str
    token_ttl: int = 300

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def private_pem(self) -> bytes:
        return self.key.as_pem(private=True)

    def write_pem(self, path: Path) -> Path:
        path.write_bytes(self.private_pem())
        path.chmod(0o600)
        return path


def _new_key(alg: str) -> RSAKey | ECKey:
    params: dict[str, Any] = {"kid": uuid.uuid4().hex[:16], "alg": alg, "use": "sig"}
    if alg.startswith("ES"):
        return ECKey.generate_key("P-384", parameters=params, private=True)  # type: ignore[arg-type]
    return RSAKey.generate_key(2048, parameters=params, private=True)  # type: ignore[arg-type]


@dataclass
class AuthServer:
    """The oidc-provider process and what a test needs to talk to it."""

    issuer: str
    fhir_audience: str
    api_audience: str
    signing_key: RSAKey
    clients: dict[str, Client]
    server: NodeServer = field(repr=False)

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def assertion(self, client_id: str, **overrides: Any) -> str:
        """A client assertion for the token endpoint; overrides change claims (exp, jti...)."""
        c = self.clients[client_id]
        now = int(time.time())
        claims = {"jti": uuid.uuid4().hex}
        claims.update({k: v for k, v in overrides.items() if k not in ("iat", "exp")})
        return str(
            private_key_jwt_sign(
                c.key,
                client_id,
                self.token_endpoint,
                alg=c.alg,
                claims=claims,
                header={"kid": c.kid, "alg": c.alg},
                issued_at=overrides.get("iat", now),
                expires_at=overrides.get("exp", now + 120),
            )
        )

    def mint_token(
        self, client_id: str, scope: str | None = None, resource: str | None = None
    ) -> dict[str, Any]:
        """Fetch a real access token from the server (client_credentials + private_key_jwt)."""
        data = {
            "grant_type": "client_credentials",
            "scope": scope if scope is not None else self.clients[client_id].scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(client_id),
        }
        if resource:
            data["resource"] = resource
        r = httpx.post(self.token_endpoint, data=data, timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """Sign arbitrary claims with the server's own key (expired/not-yet-valid tokens)."""
        hdr = {"alg": "RS256", "kid": self.signing_key.kid, "typ": "at+jwt"}
        hdr.update(header or {})
        return jwt.encode(hdr, claims, self.signing_key, algorithms=[hdr["alg"]])


@dataclass
class FhirServer:
    """The Medplum-engine FHIR server process; base_url ends in /fhir."""

    base_url: str
    port: int
    server: NodeServer = field(repr=False)
    auth: AuthServer = field(repr=False)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        """Same port; the in-memory data is lost."""
        self.server.restart()

    def settings_for(self, client: str, base_url: str | None = None, **overrides: Any) -> Any:
        """FhirSettings for Verity as this client (key passed as a PEM value, not a file)."""
        from pydantic import SecretStr

        from service.config import FhirSettings

        c = self.auth.clients[client]
        values: dict[str, Any] = {
            "base_url": base_url or self.base_url,
            "client_id": c.client_id,
            "private_key": SecretStr(c.private_pem().decode()),
            "key_id": c.kid,
            "signing_alg": c.alg,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.5,
            # Verity's default scopes plus search on what it writes (tests check the result)
            "scopes": FhirSettings().scopes + " system/DetectedIssue.rs system/Provenance.rs",
        }
        values.update(overrides)
        return FhirSettings(**values)

    def admin_headers(self) -> dict[str, str]:
        """Bearer headers for seeding and checking data (system/*.cruds)."""
        token = self.auth.mint_token("test-admin")["access_token"]
        return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}


@pytest.fixture(scope="session")
def test_servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def auth_server(test_servers_dir: Path) -> Iterator[AuthServer]:
    port, fhir_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    fhir_aud = f"http://127.0.0.1:{fhir_port}/fhir"
    clients = {
        c.client_id: c
        for c in (
            Client("verity-rs384", "RS384", _new_key("RS384"), FHIR_SCOPES),
            Client("verity-es384", "ES384", _new_key("ES384"), FHIR_SCOPES),
            Client("verity-short", "RS384", _new_key("RS384"), FHIR_SCOPES, token_ttl=4),
            Client("verity-limited", "RS384", _new_key("RS384"), "system/Patient.rs"),
            Client("test-admin", "RS384", _new_key("RS384"), ADMIN_SCOPES),
            Client("api-caller", "ES384", _new_key("ES384"), API_SCOPES),
        )
    }
    signing = RSAKey.generate_key(
        2048, parameters={"kid": uuid.uuid4().hex[:16], "alg": "RS256", "use": "sig"}, private=True
    )
    config = {
        "port": port,
        "issuer": issuer,
        "signing_jwk": signing.as_dict(private=True),
        "default_resource": fhir_aud,
        "resources": [fhir_aud, API_AUDIENCE],
        "clients": [
            {
                "client_id": c.client_id,
                "alg": c.alg,
                "scope": c.scope,
                "token_ttl": c.token_ttl,
                "jwks": {"keys": [c.key.as_dict(private=False)]},
            }
            for c in clients.values()
        ],
    }
    node = NodeServer(
        "auth_server.mjs", config, test_servers_dir, f"{issuer}/.well-known/openid-configuration"
    )
    node.start()
    server = AuthServer(issuer, fhir_aud, API_AUDIENCE, signing, clients, node)
    server.fhir_port = fhir_port  # type: ignore[attr-defined]
    yield server
    node.stop()


@pytest.fixture(scope="session")
def fhir_server(auth_server: AuthServer, test_servers_dir: Path) -> Iterator[FhirServer]:
    port: int = auth_server.fhir_port  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}/fhir"
    config = {
        "port": port,
        "issuer": auth_server.issuer,
        "jwks_uri": auth_server.jwks_uri,
        "token_endpoint": auth_server.token_endpoint,
        "audience": base,
    }
    node = NodeServer("fhir_server.mjs", config, test_servers_dir, f"{base}/metadata")
    node.start()
    yield FhirServer(base, port, node, auth_server)
    node.stop()


class LossyProxy:
    """Loopback HTTP proxy that can forward a request and then drop the connection unanswered."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        self._drop = 0
        self._drop_method = "POST"
        self.dropped = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def drop_next(self, n: int = 1, method: str = "POST") -> None:
        """Forward the next n requests with this method, then close without replying."""
        with self._lock:
            self._drop, self._drop_method = n, method

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._server = server
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                length = 0
                kept = [lines[0]]
                for line in lines[1:]:
                    name = line.split(":", 1)[0].strip().lower()
                    if name == "content-length":
                        length = int(line.split(":", 1)[1])
                    if name and name != "connection":
                        kept.append(line)
                body = await reader.readexactly(length) if length else b""
                request = ("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up_w.write(request + body)
                await up_w.drain()
                response = await up_r.read()  # upstream closes: Connection: close
                up_w.close()
                self.forwarded += 1
                with self._lock:
                    drop = self._drop > 0 and method == self._drop_method
                    if drop:
                        self._drop -= 1
                        self.dropped += 1
                if drop:
                    break
                writer.write(response)
                await writer.drain()
                if b"\r\nconnection: close" in response[:4096].lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


@pytest.fixture(scope="session")
def lossy_proxy(fhir_server: FhirServer) -> Iterator[LossyProxy]:
    proxy = LossyProxy(fhir_server.port)
    proxy.start()
    yield proxy
    proxy.stop()


def client_pem_env(client: Client) -> dict[str, str]:
    """Environment-style settings for a client (handy for subprocess-based tests)."""
    return {
        "VERITY_FHIR__CLIENT_ID": client.client_id,
        "VERITY_FHIR__PRIVATE_KEY": client.private_pem().decode(),
        "VERITY_FHIR__KEY_ID": client.kid,
        "VERITY_FHIR__SIGNING_ALG": client.alg,
    }


__all__ = [
    "API_AUDIENCE",
    "AuthServer",
    "Client",
    "FhirServer",
    "LossyProxy",
    "auth_server",
    "client_pem_env",
    "fhir_server",
    "free_port",
    "lossy_proxy",
]
