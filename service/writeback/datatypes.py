"""Small FHIR data-type helpers shared by the write-back builders (pure, no I/O)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from service.writeback import codes


class WritebackInputError(ValueError):
    """The input lacks something every written resource must carry."""


def urn(*parts: str) -> str:
    """A fullUrl that is the same on every retry, so a re-sent Bundle is byte-identical."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '|'.join(parts))}"


def narrative(*paragraphs: str) -> dict[str, str]:
    """Generated XHTML narrative, one paragraph per text, escaped."""
    body = "".join(f"<p>{escape(p, quote=False)}</p>" for p in paragraphs)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def meta(profile: str) -> dict[str, Any]:
    """Profile claim plus the AIAST label every resource Verity writes carries."""
    return {"profile": [profile], "security": [dict(codes.AIAST)]}


def instant(value: datetime) -> str:
    """An R4 instant; refuses a naive time rather than guess its zone."""
    if value.tzinfo is None:
        raise WritebackInputError("time has no time zone; FHIR instants need one")
    return value.isoformat()


def ref(reference: str, display: str | None = None, rtype: str | None = None) -> dict[str, str]:
    """A Reference that also states its resource type, so readers need not parse the URL."""
    out = {"reference": reference}
    rtype = rtype or reference_type(reference)
    if rtype:
        out["type"] = rtype
    if display:
        out["display"] = display
    return out


def reference_type(reference: str) -> str | None:
    """The resource type a relative, absolute or conditional reference points at, if it says."""
    if reference.startswith(("urn:", "#")):
        return None
    path = reference.split("?", 1)[0].rstrip("/").split("/")
    if "_history" in path:
        path = path[: path.index("_history")]
    if "?" in reference:
        candidate = path[-1]
    elif len(path) >= 2:
        candidate = path[-2]
    else:
        return None
    return candidate if candidate[:1].isupper() and candidate.isalnum() else None


def sha256_uri(sha256_hex: str) -> str:
    """RFC 6920 named-information URI of an input, so only its hash ever leaves Verity."""
    raw = bytes.fromhex(sha256_hex)
    if len(raw) != 32:
        raise WritebackInputError("digest is not a SHA-256")
    return "ni:///sha-256;" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def token_query(param: str, system: str, value: str) -> str:
    """A token search, percent-encoded so a `+`, `&` or `%` in an id cannot change its meaning."""
    return f"{param}={quote(system, safe=':/')}|{quote(value, safe=':/')}"
