"""One exception tree for everything a client of Verity can see.

    VerityError                      code, HTTP status, title, retryable
    ├── ClientError                  VERITY-4xxx: fix the request; never worth retrying as sent
    │   ├── RequestInvalid           4000  body/query/path failed validation
    │   ├── Unauthenticated          4010  missing, malformed, expired or untrusted token
    │   ├── InsufficientScope        4030  valid token, scope does not allow this call
    │   ├── RouteNotFound            4040  no such endpoint
    │   ├── MethodNotAllowed         4050  endpoint exists, method does not
    │   ├── IdempotencyConflict      4090  same Idempotency-Key reused for a different request
    │   ├── PayloadTooLarge          4130  request body over the configured byte limit
    │   ├── image errors             41xx  empty, unsupported, too large, corrupt, no pill, too many
    │   ├── library errors           42xx  unknown product, duplicate product, no references
    │   ├── FHIR reference errors    43xx  unknown/gone resource, bad reference, unsupported order
    │   ├── DICOM errors             44xx  malformed DICOM, too large, study not in PACS,
    │   │                                  PACS not allowed, no PACS, study over the limits
    │   ├── local input errors       45xx  (CLI) unreadable file, not a dataset, bad order file
    │   └── web app errors           46xx  launch refused, session ended, form check failed,
    │                                      outside the launch's patient, decision not allowed
    └── ServerError                  VERITY-5xxx: not the caller's fault; see `retryable`
        ├── InternalError            5000  unexpected; details only in the server log
        ├── DatabaseUnavailable      5030  PostgreSQL unreachable or pool exhausted
        ├── ModelNotLoaded           5031  a model the request needs is not loaded
        ├── AuthNotConfigured        5032  auth is on but no issuer/audience configured
        ├── FhirUnavailable          5020  EHR FHIR server down, timing out or 5xx
        ├── FhirAuthFailed           5021  EHR's authorization server refused our credentials
        ├── FhirRejected             5022  EHR FHIR server refused a request we built
        ├── DicomWebUnavailable      5023  PACS DICOMweb server down or timing out
        ├── DicomWebAuthFailed       5025  PACS refused Verity's credentials
        └── DicomWebRejected         5026  PACS refused a request Verity built, or answered
                                           something that is not DICOMweb

Every subclass declares its code once; `catalog()` lists them all for the docs and the
`/errors` endpoint, and the API maps any VerityError to RFC 9457 problem+json in one place
(`service/api/problems.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class CatalogEntry:
    code: str
    status: int
    title: str
    retryable: bool
    description: str


_CATALOG: dict[str, type[VerityError]] = {}


class VerityError(Exception):
    """Base of every error Verity reports to a caller."""

    code: ClassVar[str] = ""
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Error"
    retryable: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.code:
            if cls.code in _CATALOG and _CATALOG[cls.code] is not cls:
                raise TypeError(f"duplicate error code {cls.code}")
            _CATALOG[cls.code] = cls

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class ClientError(VerityError):
    """The request cannot succeed as sent."""

    status = 400


class ServerError(VerityError):
    """Verity or something it depends on failed; the request itself may be fine."""

    status = 500
    retryable = True


# --- 40xx request and protocol ---------------------------------------------------------


class RequestInvalid(ClientError):
    """The body, query or path parameters failed validation."""

    code, status, title = "VERITY-4000", 422, "Request invalid"


class Unauthenticated(ClientError):
    """No bearer token, or one that is malformed, expired, or not from the trusted issuer."""

    code, status, title = "VERITY-4010", 401, "Authentication required"


class InsufficientScope(ClientError):
    """The token is valid but its scopes do not allow this call."""

    code, status, title = "VERITY-4030", 403, "Insufficient scope"


class RouteNotFound(ClientError):
    """There is no endpoint at this path."""

    code, status, title = "VERITY-4040", 404, "Not found"


class MethodNotAllowed(ClientError):
    """The endpoint exists but not with this HTTP method."""

    code, status, title = "VERITY-4050", 405, "Method not allowed"


class IdempotencyConflict(ClientError):
    """An Idempotency-Key was reused with a different request body."""

    code, status, title = "VERITY-4090", 409, "Idempotency key reused"


class PayloadTooLarge(ClientError):
    """The request body is larger than the configured limit."""

    code, status, title = "VERITY-4130", 413, "Request too large"


# --- 41xx images ------------------------------------------------------------------------


class ImageEmpty(ClientError):
    """The uploaded image has zero bytes."""

    code, status, title = "VERITY-4100", 422, "Image is empty"


class UnsupportedMediaType(ClientError):
    """The upload is not an image format Verity decodes (JPEG, PNG, WebP, HEIC)."""

    code, status, title = "VERITY-4101", 415, "Unsupported image format"


class ImageTooLarge(ClientError):
    """The image exceeds the byte, pixel-count or dimension limit (decompression bombs too)."""

    code, status, title = "VERITY-4102", 413, "Image too large"


class ImageCorrupt(ClientError):
    """The image claims a supported format but cannot be decoded (truncated or damaged)."""

    code, status, title = "VERITY-4103", 422, "Image corrupt"


class NoPillFound(ClientError):
    """No pill could be found in the photo."""

    code, status, title = "VERITY-4104", 422, "No pill found"


class TooManyPills(ClientError):
    """More pills in the photo than the configured maximum."""

    code, status, title = "VERITY-4105", 422, "Too many pills"


class ImageTooSmall(ClientError):
    """The image is too small to identify anything in it."""

    code, status, title = "VERITY-4106", 422, "Image too small"


# --- 42xx reference library -------------------------------------------------------------


class UnknownProduct(ClientError):
    """No library product with this id."""

    code, status, title = "VERITY-4200", 404, "Unknown product"


class ProductExists(ClientError):
    """A library product with this id already exists."""

    code, status, title = "VERITY-4201", 409, "Product already exists"


class UnknownVerification(ClientError):
    """No verification with this id."""

    code, status, title = "VERITY-4202", 404, "Unknown verification"


class ProductNotEnrolled(ClientError):
    """The library product has no reference images under the current model, so nothing can be
    compared with it."""

    code, status, title = "VERITY-4203", 422, "Product has no reference images"


class UnknownImagingReference(ClientError):
    """The imaging reference library holds no reference image of this study."""

    code, status, title = "VERITY-4204", 404, "Unknown imaging reference"


# --- 43xx FHIR references ---------------------------------------------------------------


class FhirResourceNotFound(ClientError):
    """The referenced FHIR resource does not exist on the EHR's FHIR server."""

    code, status, title = "VERITY-4300", 404, "FHIR resource not found"


class FhirResourceGone(ClientError):
    """The referenced FHIR resource was deleted on the EHR's FHIR server."""

    code, status, title = "VERITY-4301", 410, "FHIR resource deleted"


class FhirReferenceInvalid(ClientError):
    """The FHIR reference is malformed or points outside the configured FHIR server."""

    code, status, title = "VERITY-4302", 422, "FHIR reference invalid"


class FhirForbidden(ClientError):
    """The EHR's FHIR server refused access to the referenced resource."""

    code, status, title = "VERITY-4303", 403, "FHIR access forbidden"


class OrderUnsupported(ClientError):
    """The order does not say what to verify against (no medication, no codes, no text)."""

    code, status, title = "VERITY-4304", 422, "Order cannot be verified"


class ImagingStudyUnsupported(ClientError):
    """The ImagingStudy cannot be checked (no Study Instance UID, no subject)."""

    code, status, title = "VERITY-4305", 422, "ImagingStudy cannot be verified"


# --- 44xx DICOM -------------------------------------------------------------------------


class DicomInvalid(ClientError):
    """The DICOM object is malformed or lacks required attributes."""

    code, status, title = "VERITY-4400", 422, "DICOM invalid"


class DicomTooLarge(ClientError):
    """The DICOM object exceeds the frame, pixel or byte limit."""

    code, status, title = "VERITY-4401", 413, "DICOM too large"


class StudyNotInPacs(ClientError):
    """The PACS does not hold the study (queried by its Study Instance UID)."""

    code, status, title = "VERITY-4402", 404, "Study not found in the PACS"


class PacsNotAllowed(ClientError):
    """The study's DICOMweb address is not one the hospital allowed; no request was sent."""

    code, status, title = "VERITY-4403", 422, "PACS address not allowed"


class NoPacsForStudy(ClientError):
    """The ImagingStudy names no DICOMweb endpoint and no PACS is configured."""

    code, status, title = "VERITY-4404", 422, "No PACS for this study"


class StudyTooLarge(ClientError):
    """The study exceeds the configured limit on instances or bytes."""

    code, status, title = "VERITY-4405", 413, "Study over the limits"


# --- 45xx files named on the command line -----------------------------------------------


class FileUnreadable(ClientError):
    """A file named on the command line is missing, is a folder, or cannot be read."""

    code, status, title = "VERITY-4500", 422, "File cannot be read"


class DatasetInvalid(ClientError):
    """The folder is not a pill dataset: no labels.csv, or it lacks the product_id column."""

    code, status, title = "VERITY-4501", 422, "Not a dataset folder"


class OrderFileInvalid(ClientError):
    """The order file is not UTF-8 JSON holding one MedicationRequest (alone or in a Bundle)."""

    code, status, title = "VERITY-4502", 422, "Order file invalid"


# --- 46xx the web app (service/web) ----------------------------------------------------


class LaunchRefused(ClientError):
    """A SMART launch could not start or finish: issuer not configured, unknown or reused
    state, or the EHR refused the authorization; start again from the EHR."""

    code, status, title = "VERITY-4600", 400, "Launch refused"


class SessionEnded(ClientError):
    """No web session, or it ended (idle too long, past its end, signed out): launch again."""

    code, status, title = "VERITY-4601", 401, "Session ended"


class FormCheckFailed(ClientError):
    """A form was posted without this session's CSRF token, or from another origin."""

    code, status, title = "VERITY-4602", 403, "Form check failed"


class OutsideLaunchContext(ClientError):
    """The resource belongs to another patient than the one the EHR launched Verity for."""

    code, status, title = "VERITY-4603", 403, "Outside the launch's patient"


class DecisionNotNeeded(ClientError):
    """The verification needs no decision (a clean result): there is nothing to close."""

    code, status, title = "VERITY-4604", 409, "No decision needed"


class DecisionExists(ClientError):
    """Someone already recorded a different decision on this verification; it stands."""

    code, status, title = "VERITY-4605", 409, "Already decided"


class ReferenceNotAccepted(ClientError):
    """A dispensing photo that cannot become a reference: no confirmed decision, a verdict
    Verity was sure about, a photo not kept or not of one pill, or a product not ordered."""

    code, status, title = "VERITY-4606", 409, "Photo not accepted as a reference"


class AuditSearchInvalid(ClientError):
    """The audit search cannot run as given: a date is not a date, or 'from' is after 'to'."""

    code, status, title = "VERITY-4620", 400, "Audit search invalid"


# --- 5xxx server and upstream -----------------------------------------------------------


class InternalError(ServerError):
    """Something unexpected failed inside Verity; details are in the server log only."""

    code, status, title = "VERITY-5000", 500, "Internal error"


class FhirUnavailable(ServerError):
    """The EHR's FHIR server is down, timing out or answering 5xx."""

    code, status, title = "VERITY-5020", 502, "FHIR server unavailable"


class FhirAuthFailed(ServerError):
    """The EHR's authorization server refused Verity's client credentials."""

    code, status, title, retryable = "VERITY-5021", 502, "FHIR authorization failed", False


class FhirRejected(ServerError):
    """The EHR's FHIR server rejected a request Verity built (4xx on our write)."""

    code, status, title, retryable = "VERITY-5022", 502, "FHIR server rejected request", False


class DicomWebUnavailable(ServerError):
    """The PACS DICOMweb server is down or timing out."""

    code, status, title = "VERITY-5023", 502, "DICOMweb server unavailable"


class DicomWebAuthFailed(ServerError):
    """The PACS refused Verity's credentials (401/403): fix the PACS configuration."""

    code, status, title, retryable = "VERITY-5025", 502, "DICOMweb authorization failed", False


class DicomWebRejected(ServerError):
    """The PACS answered a request Verity built with an unexpected 4xx, a redirect, or a body
    that is not the DICOMweb answer asked for."""

    code, status, title, retryable = "VERITY-5026", 502, "DICOMweb request rejected", False


class FhirNotConfigured(ServerError):
    """No EHR FHIR server is configured, so orders cannot be read."""

    code, status, title, retryable = "VERITY-5024", 503, "FHIR server not configured", False


class DatabaseUnavailable(ServerError):
    """PostgreSQL cannot be reached or no connection is free in time."""

    code, status, title = "VERITY-5030", 503, "Database unavailable"


class ModelNotLoaded(ServerError):
    """A model the request needs is not loaded."""

    code, status, title = "VERITY-5031", 503, "Model not loaded"


class AuthNotConfigured(ServerError):
    """Auth is on (the default) but no token issuer and audience are configured."""

    code, status, title, retryable = "VERITY-5032", 503, "Authentication not configured", False


def catalog() -> list[CatalogEntry]:
    """Every error code Verity can return, sorted by code."""
    return [
        CatalogEntry(
            code=c.code,
            status=c.status,
            title=c.title,
            retryable=c.retryable,
            description=(c.__doc__ or "").strip(),
        )
        for c in sorted(_CATALOG.values(), key=lambda c: c.code)
    ]
