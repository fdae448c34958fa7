"""The person behind a page: their server-side session (launch context, EHR token, granted
scopes, CSRF token) as FastAPI dependencies. Pages never guess the patient or the user: both
come from the EHR's token response, kept here."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from service.auth.scopes import missing_scopes
from service.config import Settings
from service.deps import connection
from service.errors import (
    InsufficientScope,
    OutsideLaunchContext,
    RouteNotFound,
    SessionEnded,
    VerityError,
)
from service.fhir.client import FhirClient
from service.store import web_sessions
from service.store.pool import Connect
from service.web.security import CSRF_FIELD, SESSION_COOKIE, CookieSigner, check_csrf
from service.workflows.decisions import Decision
from service.workflows.record import Caller


@dataclass
class WebSession:
    """One signed-in person in one launch; `data` is what the session row keeps."""

    id: str
    data: dict[str, Any]
    client_id: str
    changed: bool = field(default=False, repr=False)

    @property
    def patient_id(self) -> str | None:
        return self.data.get("patient")

    @property
    def patient_ref(self) -> str | None:
        return f"Patient/{self.patient_id}" if self.patient_id else None

    @property
    def fhir_user(self) -> str | None:
        return self.data.get("fhir_user")

    @property
    def user_name(self) -> str | None:
        return self.data.get("user_name")

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.data.get("scopes") or ())

    @property
    def csrf(self) -> str:
        return str(self.data["csrf"])

    @property
    def token(self) -> str:
        return str(self.data["token"])

    @property
    def caller(self) -> Caller:
        """Who asked, as the audit keeps it: the person (fhirUser) through the web client."""
        return Caller(self.fhir_user, self.client_id, tuple(sorted(self.scopes)))

    def can(self, *required: str) -> bool:
        """Whether the EHR granted these Verity scopes (e.g. `Library.cud`) to this person."""
        return not missing_scopes(self.scopes, required)

    def require(self, *required: str) -> None:
        missing = missing_scopes(self.scopes, required)
        if missing:
            raise InsufficientScope(f"this needs the scope {', '.join(missing)} from the EHR")

    def require_reader(self, patient_ref: str | None) -> None:
        """Reading a verification: in a patient launch, that patient's only; outside one, an
        auditor's (Verification.rs) reads any."""
        if self.patient_ref is None:
            self.require("Verification.rs")
            return
        self.require_patient(patient_ref)

    def require_patient(self, patient_ref: str | None) -> None:
        """Refuse anything about another patient than the one the EHR launched Verity for."""
        if self.patient_ref is None or patient_ref != self.patient_ref:
            raise OutsideLaunchContext("that belongs to another patient than this launch's")

    def handle(self, reference: str) -> str:
        """An opaque handle for a FHIR reference: URLs carry no ids of the patient's records."""
        key = self.csrf.encode()
        h = hmac.new(key, reference.encode(), hashlib.sha256).hexdigest()[:20]
        handles = self.data.setdefault("handles", {})
        if handles.get(h) != reference:
            handles[h] = reference
            self.changed = True
        return h

    def resolve(self, handle: str) -> str:
        """The reference behind a handle this session handed out; anything else is not found."""
        reference = (self.data.get("handles") or {}).get(handle)
        if not isinstance(reference, str):
            raise RouteNotFound("no such item in this session; go back to the list")
        return reference


async def current_session(request: Request) -> WebSession:
    """The signed-in session, its idle clock restarted; SessionEnded (401) when there is none."""
    settings: Settings = request.app.state.settings
    signer: CookieSigner = request.app.state.web_signer
    session_id = signer.read_session(request.cookies.get(SESSION_COOKIE))
    if session_id is None:
        raise SessionEnded("no session: open Verity from the EHR")
    async with connection(request) as conn:
        row = await web_sessions.touch(
            conn, session_id, timedelta(seconds=settings.web.session_idle_s)
        )
    if row is None:
        raise SessionEnded("the session ended: open Verity from the EHR again")
    if float(row.data.get("token_expires_at") or 0) <= time.time():
        raise SessionEnded("the EHR's authorization for this session ended: open Verity again")
    session = WebSession(session_id, dict(row.data), settings.web.client_id or "")
    request.state.web_session = session
    return session


async def save_session(request: Request, session: WebSession) -> None:
    """Keep what a page added to the session (handles); a no-op when nothing changed."""
    if not session.changed:
        return
    async with connection(request) as conn:
        await web_sessions.update_data(conn, session.id, session.data)
    session.changed = False


CurrentSession = Annotated[WebSession, Depends(current_session)]
# A Verity verification id in a path; a form's one-time nonce (its idempotency key).
VerificationId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def connector(request: Request) -> Connect:
    """Short database steps for a page's workflows (a connection only around each)."""
    return lambda: connection(request)


async def form_session(request: Request, session: CurrentSession) -> WebSession:
    """The session of a form post: its CSRF token checked, and its origin if the browser sent
    one; the form is parsed once here and cached for the route's own Form parameters."""
    settings: Settings = request.app.state.settings
    form = await request.form()
    try:
        check_csrf(
            session.csrf, form.get(CSRF_FIELD), request.headers.get("origin"),
            settings.web.public_url or "",
        )  # fmt: skip
    except VerityError:
        await form.close()  # a refused upload's temporary files
        raise
    return session


FormSession = Annotated[WebSession, Depends(form_session)]


def user_fhir(request: Request, session: CurrentSession) -> FhirClient:
    """The EHR's FHIR server with the person's own token (user-level access)."""
    fhir: FhirClient | None = request.app.state.fhir
    if fhir is None:
        raise SessionEnded("no EHR is configured")
    return fhir.for_user(session.token)


UserFhir = Annotated[FhirClient, Depends(user_fhir)]


async def posted_decision(request: Request, session: WebSession) -> Decision:
    """The person's decision from the decision form (templates/_decision.html); recorded only
    from a patient's chart by a person the EHR named (fhirUser)."""
    if session.patient_id is None or session.fhir_user is None:
        raise OutsideLaunchContext("a decision is recorded from the patient's chart")
    form = await request.form()
    action, reason = form.get("action"), form.get("reason")
    return Decision(
        action=action if isinstance(action, str) else "",
        reason=reason if isinstance(reason, str) else None,
        author_ref=session.fhir_user, author_display=session.user_name, caller=session.caller,
    )  # fmt: skip
