"""SMART App Launch on the test servers: web clients, EHR users, and an httpx launch flow.

The authorization server (auth_server.mjs + smart_launch.mjs) plays the EHR: it launches the
app, signs users in with a plain form and grants what each user may have. These objects are
what the tests (and the web app's browser tests) need to drive it; see tests/servers/fixtures.py.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import httpx
from joserfc.jwk import ECKey, RSAKey

if TYPE_CHECKING:
    from tests.servers.servers import FhirServer

# Lifetimes and limits of the EHR side (seconds / bytes), passed to the server as cfg.smart.
SMART_LIMITS: dict[str, int] = {
    "launch_ttl_s": 300,  # an EHR launch id is single-use and short-lived
    "code_ttl_s": 60,
    "interaction_ttl_s": 600,
    "session_ttl_s": 3600,
    "access_token_ttl_s": 3600,
    "max_form_bytes": 4096,
}

PATIENT_READ = "patient/MedicationRequest.rs patient/Medication.rs patient/Patient.rs"
PHARMACIST_SCOPES = (
    f"launch openid fhirUser profile launch/patient {PATIENT_READ} patient/ImagingStudy.rs "
    "user/Verification.rs"
)


@dataclass
class WebClient:
    """A browser-facing SMART client; key is None for the public client (PKCE only)."""

    client_id: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str  # "private_key_jwt" | "none"
    key: RSAKey | ECKey | None = None
    alg: str | None = None

    @property
    def kid(self) -> str | None:
        return None if self.key is None else str(self.key.kid)

    def private_pem(self) -> bytes:
        if self.key is None:
            raise ValueError("a public client has no key")
        return self.key.as_pem(private=True)

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "client_id": self.client_id,
            "redirect_uris": self.redirect_uris,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }
        if self.key is not None:
            out["alg"] = self.alg
            out["jwks"] = {"keys": [self.key.as_dict(private=False)]}
        return out


@dataclass
class User:
    """An EHR user: who signs in, their Practitioner, and the scopes they may be granted."""

    id: str
    fhir_user: str
    name: str
    scopes: str
    password: str | None = None

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "fhirUser": self.fhir_user,
            "name": self.name,
            "scopes": self.scopes,
        }
        if self.password is not None:
            out["password"] = self.password
        return out


def default_web_clients(web_port: int, key: ECKey) -> dict[str, WebClient]:
    """verity-web (private_key_jwt, ES384) and verity-web-public (none), same redirect URIs."""
    uris = [
        f"http://127.0.0.1:{web_port}/app/callback",
        f"http://localhost:{web_port}/app/callback",
    ]
    return {
        "verity-web": WebClient("verity-web", uris, "private_key_jwt", key, "ES384"),
        "verity-web-public": WebClient("verity-web-public", list(uris), "none"),
    }


def default_users() -> dict[str, User]:
    """The four people of issue 14: pharmacist, library manager, radiographer, auditor."""
    users = (
        User("pharmacist", "Practitioner/pharm-1", "Pat Pharmacist", PHARMACIST_SCOPES),
        User(
            "libmgr",
            "Practitioner/lib-1",
            "Lee Librarian",
            f"{PHARMACIST_SCOPES} user/Library.cud user/Library.rs",
        ),
        User(
            "radiographer",
            "Practitioner/rad-1",
            "Rae Radiographer",
            "launch openid fhirUser profile launch/patient patient/Patient.rs patient/ImagingStudy.rs "
            "patient/ServiceRequest.rs patient/Endpoint.rs user/Verification.rs",
        ),
        User(
            "auditor",
            "Practitioner/aud-1",
            "Ari Auditor",
            "openid fhirUser profile user/Verification.rs",
        ),
    )
    return {u.id: u for u in users}


def seed_practitioners(fhir_server: FhirServer, users: dict[str, User] | None = None) -> None:
    """PUT one Practitioner per user (id and name from the user), with the admin token."""
    people = users if users is not None else fhir_server.auth.users
    headers = {**fhir_server.admin_headers(), "Content-Type": "application/fhir+json"}
    for u in people.values():
        kind, pid = u.fhir_user.split("/", 1)
        *given, family = u.name.split()
        name = {"text": u.name, "family": family, "given": given}
        body = {"resourceType": kind, "id": pid, "active": True, "name": [name]}
        r = httpx.put(
            f"{fhir_server.base_url}/{kind}/{pid}", json=body, headers=headers, timeout=10
        )
        r.raise_for_status()


def pkce_pair() -> tuple[str, str]:
    """A fresh (code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class _FormFields(HTMLParser):
    """Names of the form fields and the submit buttons' text on the login page."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[str] = []
        self.labels: dict[str, str] = {}
        self.buttons: list[str] = []
        self._in: str | None = None
        self._for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.fields.append(str(a["name"]))
        self._in, self._for = tag, a.get("for")

    def handle_data(self, data: str) -> None:
        if self._in == "label" and self._for:
            self.labels[self._for] = data.strip()
        elif self._in == "button" and data.strip():
            self.buttons.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def login_form(html: str) -> _FormFields:
    """Parse the EHR login page (field names, labels, button text)."""
    parser = _FormFields()
    parser.feed(html)
    return parser
