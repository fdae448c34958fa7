"""The real test servers as plain objects, usable from pytest fixtures and from bench/.

`start_auth_server(workdir)` runs npm oidc-provider (tests/servers/auth_server.mjs) with
freshly generated client keys; `start_fhir_server(auth, workdir)` runs Medplum's FHIR engine
behind tests/servers/fhir_server.mjs, which requires that server's tokens. Both listen on
127.0.0.1 on free ports; `.stop()` them when done. Install with tests/servers/install.sh.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

HERE = Path(__file__).resolve().parent
API_AUDIENCE = "urn:verity:api"

# SMART v2 scopes Verity asks for (service/config.py FhirSettings.scopes) plus v1 forms.
FHIR_SCOPES = (
    "system/MedicationRequest.rs system/Medication.rs system/Patient.rs "
    "system/ImagingStudy.rs system/ServiceRequest.rs system/Endpoint.rs system/DetectedIssue.cru "
    "system/DiagnosticReport.cru system/Observation.cru system/Provenance.cr system/Device.cru "
    "system/DetectedIssue.cu system/DiagnosticReport.cu system/Provenance.c "
    "system/DetectedIssue.rs system/Provenance.rs "
    "system/DetectedIssue.crs system/DetectedIssue.crus system/DiagnosticReport.crs system/Observation.crs "
    "system/Provenance.crs system/Device.crs system/DocumentReference.crs"
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

    ready_timeout_s = 30.0  # raise it for a server restarted while the machine is loaded

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
        _wait_http(self.ready_url, self.proc, self.log_path, self.ready_timeout_s)

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
    # Session-scoped test tokens must outlive the whole run, also on a loaded 2-core machine.
    token_ttl: int = 3600

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
    fhir_port: int = 0

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


def start_auth_server(workdir: Path) -> AuthServer:
    """Generate keys, write the config, start oidc-provider; the FHIR port is reserved too."""
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
        "auth_server.mjs", config, workdir, f"{issuer}/.well-known/openid-configuration"
    )
    node.start()
    return AuthServer(issuer, fhir_aud, API_AUDIENCE, signing, clients, node, fhir_port)


def start_fhir_server(auth_server: AuthServer, workdir: Path) -> FhirServer:
    """Start the FHIR launcher on the port the auth server's FHIR audience names."""
    port: int = auth_server.fhir_port
    base = f"http://127.0.0.1:{port}/fhir"
    config = {
        "port": port,
        "issuer": auth_server.issuer,
        "jwks_uri": auth_server.jwks_uri,
        "token_endpoint": auth_server.token_endpoint,
        "audience": base,
    }
    node = NodeServer("fhir_server.mjs", config, workdir, f"{base}/metadata")
    node.start()
    return FhirServer(base, port, node, auth_server)


def client_pem_env(client: Client) -> dict[str, str]:
    """Environment-style settings for a client (handy for subprocess-based tests)."""
    return {
        "VERITY_FHIR__CLIENT_ID": client.client_id,
        "VERITY_FHIR__PRIVATE_KEY": client.private_pem().decode(),
        "VERITY_FHIR__KEY_ID": client.kid,
        "VERITY_FHIR__SIGNING_ALG": client.alg,
    }
