"""The hospital's PACS allow-list: which DICOMweb base a study may be fetched from.

`Endpoint.address` is EHR data. Verity fetches only from a base the hospital configured
(`PacsSettings.base_url` / `allowed_base_urls`) or a path below one; anything else is refused
with PacsNotAllowed before a request exists, and is never silently replaced by the configured
PACS. Addresses are compared in a normal form (scheme, lower-case host, explicit port, path
without trailing slash), and the forms that make URL parsers disagree are refused outright:
userinfo (`http://pacs@evil`), query, fragment, dot segments, encoded dots or slashes,
backslashes, whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.config import ConfigError, PacsSettings
from service.errors import NoPacsForStudy, PacsNotAllowed
from service.verify.imaging.study import EndpointInfo

DEFAULT_PORTS = {"http": 80, "https": 443}
# Endpoint.connectionType codes (http://terminology.hl7.org/CodeSystem/endpoint-connection-type)
# that speak DICOMweb, most preferred first; an endpoint without a type is tried last.
DICOMWEB_TYPES = ("dicom-wado-rs", "dicom-qido-rs")
_UNSAFE = re.compile(r"[\s\\]|%2e|%2f|%5c|%00", re.IGNORECASE)


@dataclass(frozen=True)
class PacsBase:
    """A DICOMweb base URL in normal form: what the allow-list compares."""

    scheme: str
    host: str
    port: int
    path: str  # "" or "/seg/seg", no trailing slash

    def under(self, allowed: PacsBase) -> bool:
        """Same origin and the same path or a path-segment below it (`/dicom-web/x`, never
        `/dicom-webx`)."""
        if (self.scheme, self.host, self.port) != (allowed.scheme, allowed.host, allowed.port):
            return False
        return self.path == allowed.path or self.path.startswith(allowed.path + "/")

    def url(self) -> str:
        """The base as a URL, the default port left out."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


def parse_base(address: str) -> PacsBase:
    """Normalise a DICOMweb base URL; PacsNotAllowed for any form the allow-list refuses."""
    if _UNSAFE.search(address) or any(ord(c) < 0x20 or c == "\x7f" for c in address):
        raise PacsNotAllowed("DICOMweb address has whitespace, backslashes or encoded separators")
    parts = urlsplit(address)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise PacsNotAllowed("DICOMweb address is not an http(s) URL")
    if "@" in parts.netloc:
        raise PacsNotAllowed("DICOMweb address carries userinfo")
    if parts.query or parts.fragment or "?" in address or "#" in address:
        raise PacsNotAllowed("DICOMweb address carries a query or fragment")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise PacsNotAllowed("DICOMweb address has no host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise PacsNotAllowed("DICOMweb address has an invalid port") from None
    segments = parts.path.rstrip("/").split("/")
    if any(seg in (".", "..") for seg in segments) or "//" in parts.path.rstrip("/"):
        raise PacsNotAllowed("DICOMweb address has dot or empty path segments")
    return PacsBase(scheme, host, port, "/".join(segments))


def allowed_bases(settings: PacsSettings) -> list[PacsBase]:
    """The configured bases (a malformed one is a configuration error, raised as such)."""
    configured = ([settings.base_url] if settings.base_url else []) + settings.allowed_base_urls
    try:
        return [parse_base(url) for url in configured]
    except PacsNotAllowed as exc:
        raise ConfigError(f"VERITY_PACS__ base URLs: {exc.detail}") from None


def check_allowed(address: str, settings: PacsSettings) -> str:
    """The address as a normal-form URL if it is on the allow-list, else PacsNotAllowed."""
    base = parse_base(address)
    if not any(base.under(allowed) for allowed in allowed_bases(settings)):
        raise PacsNotAllowed("the study's DICOMweb address is not on the PACS allow-list")
    return base.url()


def pacs_base_for(endpoints: Sequence[EndpointInfo], settings: PacsSettings) -> str:
    """The DICOMweb base to fetch a study from: the first allowed DICOMweb endpoint (WADO-RS
    preferred), else the configured PACS when the study names none, else NoPacsForStudy."""
    rank = {kind: i for i, kind in enumerate(DICOMWEB_TYPES)}
    candidates = sorted(
        (e for e in endpoints if e.connection_type is None or e.connection_type in rank),
        key=lambda e: rank.get(e.connection_type or "", len(rank)),
    )
    if not candidates:
        if settings.base_url:
            return check_allowed(settings.base_url, settings)
        raise NoPacsForStudy("the ImagingStudy names no DICOMweb endpoint and no PACS is set")
    refusals: list[PacsNotAllowed] = []
    for endpoint in candidates:
        try:
            return check_allowed(endpoint.address, settings)
        except PacsNotAllowed as exc:
            refusals.append(exc)
    raise refusals[0]
