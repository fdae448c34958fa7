"""FHIR references as callers give them: `123`, `MedicationRequest/123`, or an absolute URL on
the configured server. Pure."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from service.errors import FhirReferenceInvalid

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR id datatype


def parse_reference(value: str, resource_type: str, base_url: str | None) -> str:
    """`Type/id` for an id, relative reference or absolute URL under `base_url`."""
    raw = value.strip()
    if raw.startswith(("http://", "https://")):
        if not base_url:
            raise FhirReferenceInvalid("absolute FHIR URLs need a configured FHIR server")
        base = base_url.rstrip("/")
        if urlsplit(raw)[:2] != urlsplit(base)[:2] or not raw.startswith(base + "/"):
            raise FhirReferenceInvalid("the URL is not on the configured FHIR server")
        raw = raw[len(base) + 1 :]
    parts = raw.split("/")
    if len(parts) == 1:
        parts = [resource_type, parts[0]]
    if len(parts) >= 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) != 2 or parts[0] != resource_type or not _ID.match(parts[1]):
        raise FhirReferenceInvalid(f"expected a {resource_type} id or reference, got {value!r}")
    return f"{parts[0]}/{parts[1]}"
