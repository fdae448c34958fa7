"""OperationOutcome and HTTP status -> the typed errors of service/errors.py.

401 -> FhirAuthFailed, 403 -> FhirForbidden, 404 -> FhirResourceNotFound, 410 -> FhirResourceGone,
other 4xx (400, 409, 412, 422...) -> FhirRejected, 429/5xx -> FhirUnavailable. The upstream
status is kept in `extra["upstream_status"]`.
"""

from __future__ import annotations

from typing import Any

from service.errors import (
    FhirAuthFailed,
    FhirForbidden,
    FhirRejected,
    FhirResourceGone,
    FhirResourceNotFound,
    FhirUnavailable,
    VerityError,
)


def outcome_text(body: Any) -> str:
    """Human text from an OperationOutcome (diagnostics or details.text), bounded in size."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    parts = []
    for issue in body.get("issue") or []:
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        parts.append(f"{issue.get('code', 'unknown')}: {text}" if text else issue.get("code", ""))
    return "; ".join(p for p in parts if p)[:500]


def error_for(status: int, body: Any, what: str) -> VerityError:
    """The typed error for a non-2xx FHIR response."""
    text = outcome_text(body)
    detail = f"{what}: HTTP {status}" + (f" ({text})" if text else "")
    if status == 401:
        return FhirAuthFailed(detail, upstream_status=status)
    if status == 403:
        return FhirForbidden(detail, upstream_status=status)
    if status == 404:
        return FhirResourceNotFound(detail, upstream_status=status)
    if status == 410:
        return FhirResourceGone(detail, upstream_status=status)
    if 400 <= status < 500 and status != 429:
        return FhirRejected(detail, upstream_status=status)
    return FhirUnavailable(detail, upstream_status=status)
