"""Typed settings from the environment (prefix VERITY_, nested groups joined by `__`).

Built once in the app factory or CLI, never at import time. Refuses unsafe values.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "changethis", "change-me", "secret", "password", "example", "todo", "xxx"}
)


class ConfigError(ValueError):
    """Configuration that Verity refuses to start with."""


class DbSettings(BaseModel):
    """PostgreSQL: external via DATABASE_URL, else an embedded server under data_dir."""

    url: SecretStr | None = None
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(10, ge=1)
    pool_timeout_s: float = Field(10.0, gt=0, description="wait for a free connection")
    connect_timeout_s: int = Field(5, ge=1)
    max_lifetime_s: float = Field(1800.0, gt=0)
    max_idle_s: float = Field(300.0, gt=0)
    statement_timeout_ms: int = Field(30_000, ge=100)


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8420, ge=1, le=65535)
    max_request_bytes: int = Field(40 * 1024 * 1024, ge=1024)


class AuthSettings(BaseModel):
    """Inbound bearer tokens: Verity as an OAuth resource server."""

    enabled: bool = True
    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    algorithms: list[str] = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384"]
    leeway_s: int = Field(30, ge=0, le=300)
    jwks_cache_s: int = Field(3600, ge=10)
    jwks_min_refresh_s: int = Field(30, ge=1)
    http_timeout_s: float = Field(5.0, gt=0)
    ready_cache_s: float = Field(
        10.0, ge=0, description="/health/ready reuses an issuer probe this long (0: every call)"
    )
    ready_timeout_s: float = Field(
        2.0, gt=0, le=30, description="/health/ready: bound on one issuer probe (metadata + JWKS)"
    )
    # Set only by Settings (environment=development, auth on, no issuer): never from the env.
    _development_key_dir: Path | None = PrivateAttr(None)

    @property
    def development_key_dir(self) -> Path | None:
        """Where the development issuer's key lives, or None when it must not be trusted."""
        return self._development_key_dir


class FhirSettings(BaseModel):
    """Outbound: the EHR's FHIR R4 server and Verity's SMART Backend Services credentials."""

    base_url: str | None = None
    client_id: str | None = None
    private_key_file: Path | None = None
    private_key: SecretStr | None = None
    key_id: str | None = None
    signing_alg: Literal["RS384", "ES384"] = "RS384"
    scopes: str = (
        "system/MedicationRequest.rs system/Medication.rs system/Patient.rs "
        "system/ImagingStudy.rs system/ServiceRequest.rs system/Endpoint.rs "
        "system/DetectedIssue.crus "
        "system/DiagnosticReport.crs system/Observation.crs system/Provenance.crs "
        "system/Device.crs system/DocumentReference.crs"
    )
    timeout_s: float = Field(15.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    max_pages: int = Field(50, ge=1)
    token_renew_margin_s: float = Field(60.0, ge=0, description="renew this long before expiry")
    assertion_lifetime_s: int = Field(240, ge=10, le=300, description="SMART: exp <= 5 min")
    retry_after_max_s: float = Field(60.0, gt=0, description="cap on an honoured Retry-After")


class ModelSettings(BaseModel):
    """ONNX Runtime sessions, loaded once at start-up."""

    dir: Path | None = None
    intra_op_threads: int = Field(2, ge=1)
    inter_op_threads: int = Field(1, ge=1)
    embedder: str = "efficientnet-lite0"
    cascade: list[str] = Field(
        default_factory=list,
        description="bigger embedders tried after `embedder`, in order, only when it is unsure",
    )
    head: str | None = Field(
        "pill-head-wccn", description="projection applied to the embedder's output (None: raw)"
    )
    cascade_margin: float = Field(0.5, ge=0, le=1, description="run the next embedder below this")
    ocr: bool = True
    ocr_side_px: int = Field(192, ge=32, le=1024, description="OCR input: crop's short side")
    ocr_relief_side_px: int = Field(
        320,
        ge=0,
        le=1024,
        description="second OCR pass on the relief image (debossed imprints) when the first"
        " reads nothing; its short side in px (0: no second pass)",
    )
    ocr_max_side_px: int = Field(
        640, ge=64, le=4096, description="OCR input: cap on the long side (memory of capsules)"
    )

    @property
    def embedders(self) -> list[str]:
        """The embedder cascade, fastest first."""
        return [self.embedder, *[m for m in self.cascade if m != self.embedder]]


class LimitSettings(BaseModel):
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=10_000)
    max_image_dimension: int = Field(10_000, ge=64)
    min_image_dimension: int = Field(32, ge=8)
    max_pills_per_photo: int = Field(5, ge=1)
    max_photos_per_request: int = Field(6, ge=1)
    max_dicom_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    max_dicom_frames: int = Field(1000, ge=1)
    keep_photos: bool = Field(
        True, description="keep submitted photos with the verification (for review, learning)"
    )
    pill_picture_px: int = Field(
        320, ge=64, le=1024, description="long side of each kept pill picture (PNG)"
    )


class DecisionSettings(BaseModel):
    """Score bands: >= match is MATCH, >= review is UNCERTAIN, below is MISMATCH.

    The pill score is the open-set posterior that the pill is the prescribed clinical drug
    (service/verify/pills.py), and only the most probable clinical drug can be a MATCH. 0.3 was
    chosen on leave-one-product-out CV of the dev photos (scripts/fit_fusion.py: true-accept
    rate 0.68, false-accept rate 0.0089 there; 0.5 gives 0.48 and 0.0077), see the curve in
    pill-fusion.json.
    """

    match_threshold: float = Field(0.3, ge=0, le=1)
    review_threshold: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> DecisionSettings:
        if self.review_threshold > self.match_threshold:
            raise ValueError("decision.review_threshold must not exceed decision.match_threshold")
        return self


class SearchSettings(BaseModel):
    """pgvector search over the reference views (one HNSW cosine index per model version)."""

    hnsw_m: int = Field(16, ge=4, le=100, description="HNSW graph degree (new indexes only)")
    hnsw_ef_construction: int = Field(
        64, ge=8, le=1000, description="HNSW build candidate list (new indexes only)"
    )
    shortlist_views: int = Field(
        500,
        ge=10,
        le=1000,
        description="nearest reference views per query embedding; their distinct products are"
        " ranked exactly (hnsw.ef_search is set to this, so the graph returns all of them)",
    )


class OutboxSettings(BaseModel):
    relay_enabled: bool = True
    poll_interval_s: float = Field(1.0, gt=0)
    batch_size: int = Field(20, ge=1)
    max_attempts: int = Field(10, ge=1)
    backoff_base_s: float = Field(2.0, gt=0)
    backoff_max_s: float = Field(600.0, gt=0)
    lease_s: float = Field(300.0, ge=5, description="a claimed row comes due again after this")
    write_match: bool = False


class PacsSettings(BaseModel):
    """The hospital's PACS over DICOMweb: the allow-list, credentials, timeouts and limits.

    `Endpoint.address` in an ImagingStudy is EHR data: Verity fetches only from a base URL
    listed in `allowed_base_urls` (or `base_url`), never from any other address.
    """

    base_url: str | None = Field(
        None,
        description="the DICOMweb base (e.g. http://pacs/dicom-web) for studies that name"
        " no endpoint; always allowed",
    )
    allowed_base_urls: list[str] = Field(
        default_factory=list,
        description="other DICOMweb bases an ImagingStudy.endpoint may name (exact prefix match)",
    )
    auth: Literal["none", "basic", "bearer", "smart"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    token_file: Path | None = Field(None, description="bearer token, re-read on every 401")
    timeout_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(20.0, gt=0)
    retry_after_max_s: float = Field(
        60.0, ge=0, description="cap on a PACS's Retry-After before the next attempt"
    )
    concurrency: int = Field(4, ge=1, le=64, description="instances fetched at once per study")
    max_instances: int = Field(5000, ge=1, description="refuse larger studies (StudyTooLarge)")
    max_instance_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    max_metadata_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="one QIDO-RS or WADO-RS metadata answer"
    )
    max_study_bytes: int = Field(4 * 1024**3, ge=1024)


class ContentSettings(BaseModel):
    """The pixel tiers of imaging checks: ONNX embeddings in pgvector, only where needed."""

    enabled: bool = Field(True, description="embed images for CONTENT_MISMATCH and near-duplicates")
    models: list[str] = Field(
        default_factory=lambda: ["efficientnet-lite0"],
        description="embedders, first first; the next runs only on images the previous left"
        " uncertain (a cascade)",
    )
    images_per_series: int = Field(
        3, ge=1, le=64, description="representative images embedded per series (of its frames)"
    )
    k: int = Field(10, ge=1, le=100, description="nearest labelled references per image")
    # Cosine distances of the bundled ImageNet backbone on the dev studies: an image and a
    # reference of the same modality and body part from another source are 0.26-0.47 apart,
    # of another label 0.40-0.77 (docs/imaging.md, "Pixel checks").
    evidence_distance: float = Field(
        0.35, gt=0, le=2, description="references farther than this say nothing about an image"
    )
    temperature: float = Field(0.05, gt=0, description="of the distance-weighted reference vote")
    match_p: float = Field(0.8, gt=0.5, le=1, description="P(compatible) for MATCH")
    mismatch_p: float = Field(0.9, gt=0.5, le=1, description="P(incompatible) for MISMATCH")
    # Measured once on the 29 real images of ../shared/data/dicom with a one-off script that
    # is not kept (docs/imaging.md, "Pixel checks"; tests/workflows/test_pixel_tiers.py holds
    # one real case): a 5% crop is <= 0.075 from its original, a 10% crop <= 0.112, a
    # gamma 0.7-1.5 re-window <= 0.145, half the size p95 0.27; two distinct images of the dev
    # studies are >= 0.258 apart. 0.12 lies between, nearer the copies.
    near_duplicate_distance: float = Field(
        0.12,
        ge=0,
        le=1,
        description="embedding (cosine) distance to another patient's image that counts as the"
        " same image when its fingerprint did not match (cropped, re-windowed, resized,"
        " re-encoded); 0 turns the tier off",
    )
    plausibility: bool = Field(
        True,
        description="judge each image's physical plausibility (body size in mm, matrix, shape)"
        " for the declared modality and body part as evidence for CONTENT_MISMATCH",
    )
    lookalike: bool = Field(
        False,
        description="possible-wrong-patient check from the patient's priors (off: the dev data"
        " holds no priors to show that it works)",
    )
    lookalike_margin: float = Field(
        0.1,
        ge=0,
        description="UNCERTAIN when the patient's nearest prior is this much farther than"
        " another patient's nearest image",
    )

    @model_validator(mode="after")
    def _models(self) -> ContentSettings:
        if self.enabled and not self.models:
            raise ValueError("imaging.content.models is empty while the content tier is on")
        return self


class ImagingLibrarySettings(BaseModel):
    """The imaging reference library: limits of an upload and of re-embedding."""

    max_files: int = Field(
        50, ge=1, le=1000, description="DICOM files in one POST /v1/imaging-references"
    )
    max_view_chars: int = Field(64, ge=1, le=200, description="length of a reference's view label")
    reembed_batch: int = Field(
        256, ge=1, le=10_000, description="stored canvases embedded per step of `reembed`"
    )


class ImagingSettings(BaseModel):
    """Imaging-study checks and their job queue."""

    date_window_days: int = Field(
        30, ge=0, le=3650, description="StudyDate this far from the order date: DATE_OUT_OF_WINDOW"
    )
    patient_id_issuers: list[str] = Field(
        default_factory=list,
        description="IssuerOfPatientID names (or UniversalEntityIDs) of the hospital's MRN"
        " authority, besides the Patient's MRN system (e.g. HOSPITAL.EXAMPLE); any other"
        " issuer in a DICOM header is PATIENT_ID_MISMATCH",
    )
    representative_frames: int = Field(
        3, ge=1, le=64, description="frames decoded from a multi-frame instance"
    )
    # Of the 256 fingerprint bits (service/vision/dicom/fingerprint.py). Measured on the dev
    # studies (tests/vision/test_fingerprint.py): the 3 DUPLICATE_IMAGE cases are 0 bits from
    # their archive image; the other 996 (case, archive) pairs are 106-150 apart. Synthetic
    # changes of 38 real images stay within: JPEG q40 6, J2K 20:1 14, window/gamma 24,
    # 6-bit 2, 4x smaller 38, a 1% crop 44. 48 lies between, nearer the duplicates.
    duplicate_max_distance: int = Field(
        48, ge=0, le=256, description="fingerprint Hamming distance that counts as the same image"
    )
    content: ContentSettings = Field(default_factory=ContentSettings)
    library: ImagingLibrarySettings = Field(default_factory=ImagingLibrarySettings)
    review_thumbnails: int = Field(
        12, ge=0, le=64, description="windowed thumbnails kept with a verification for people"
    )
    worker_enabled: bool = Field(True, description="run imaging jobs inside `verity serve`")
    poll_interval_s: float = Field(1.0, gt=0)
    lease_s: float = Field(300.0, ge=5, description="a claimed job comes due again after this")
    max_attempts: int = Field(5, ge=1, description="retryable failures before a job fails")
    backoff_base_s: float = Field(5.0, gt=0)
    backoff_max_s: float = Field(600.0, gt=0)


class GrpcSettings(BaseModel):
    """The gRPC front door (service/rpc): off unless a port is set; same host as HTTP."""

    port: int | None = Field(
        None, ge=0, le=65535, description="listen here (0: any free port; None: no gRPC)"
    )
    max_message_bytes: int = Field(
        40 * 1024 * 1024, ge=1024, description="largest request or response message"
    )
    max_concurrent_rpcs: int = Field(
        64, ge=1, description="RPCs in progress at once; more are refused RESOURCE_EXHAUSTED"
    )
    max_concurrent_streams: int = Field(32, ge=1, description="HTTP/2 streams per connection")
    tls_cert_file: Path | None = Field(None, description="PEM certificate chain (with the key)")
    tls_key_file: Path | None = Field(None, description="PEM private key (with the cert)")
    health_poll_s: float = Field(
        5.0, gt=0, description="readiness is recomputed this often for health Watch streams"
    )
    watch_poll_s: float = Field(
        0.5, gt=0, description="WatchImagingVerification reads the job this often"
    )
    watch_max_s: float = Field(
        3600.0, gt=0, description="a watch stream ends (DEADLINE_EXCEEDED) after this at most"
    )
    shutdown_grace_s: float = Field(10.0, ge=0, description="RPCs in flight get this to finish")

    @model_validator(mode="after")
    def _whole_tls(self) -> GrpcSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "set both VERITY_GRPC__TLS_CERT_FILE and VERITY_GRPC__TLS_KEY_FILE, or neither"
            )
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


# A relative or absolute reference to an Organization (FHIR id: 1-64 of [A-Za-z0-9-.]).
_ORGANIZATION_REF = re.compile(r"(?:https?://[^\s|?#]+/)?Organization/[A-Za-z0-9\-.]{1,64}")
# An absolute URI usable as an identifier or tag system (no `|`: it splits token searches).
_SYSTEM_URI = re.compile(r"(?:urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:|https?://)[^\s|]+")


# Verity's canonical base by default: `.example` is reserved (RFC 2606), so a deployment that
# publishes its own package sets VERITY_WRITEBACK__CANONICAL_BASE (docs/fhir.md).
DEFAULT_CANONICAL_BASE = "https://fhir.hospital.example/verity"
_CANONICAL_BASE = re.compile(r"https://[^\s|?#]+[^\s|?#/]")
# Writeback identifier systems -> the name each defaults to under {canonical_base}/sid/.
_IDENTIFIER_SYSTEMS = {
    "identifier_system": "verification",
    "device_identifier_system": "device",
    "model_card_identifier_system": "model-card",
}

# Medplum refuses a transaction of conditional creates with more than 8 entries: the smallest
# cap we know of, so the default that works everywhere.
DEFAULT_MAX_TRANSACTION_ENTRIES = 8


class WritebackSettings(BaseModel):
    """What Verity writes to the EHR: for whom, as which Device, under which identifiers.

    The identifier systems make every write idempotent: change them only before the first
    write (resources already written keep the systems they were created under).
    """

    organization: str | None = Field(
        None,
        description="the hospital's Organization (e.g. Organization/123): Device.owner and the"
        " Provenance's onBehalfOf and custodian; unset = not written",
    )
    organization_display: str | None = Field(None, min_length=1, max_length=200)
    canonical_base: str = Field(
        DEFAULT_CANONICAL_BASE,
        description="https base of Verity's profiles, code systems and identifier systems, under"
        " the hospital's domain; the FHIR package must be built with the same base",
    )
    # Unset identifier systems default under canonical_base: {canonical_base}/sid/<name>.
    identifier_system: str = ""
    device_identifier_system: str = ""
    model_card_identifier_system: str = ""
    device_name: str = Field("Verity", min_length=1, max_length=100)
    device_id: str = Field("verity", pattern=r"^[A-Za-z0-9\-.]{1,32}$")
    manufacturer: str | None = Field(None, min_length=1, max_length=200)
    max_transaction_entries: int = Field(
        DEFAULT_MAX_TRANSACTION_ENTRIES,
        ge=3,
        description="the most entries the FHIR server takes in one transaction of conditional"
        " creates; a larger write-back is delivered in several parts (Medplum's cap is 8)",
    )

    @field_validator("organization")
    @classmethod
    def _organization_reference(cls, value: str | None) -> str | None:
        if value is not None and not _ORGANIZATION_REF.fullmatch(value):
            raise ValueError("must be a reference to an Organization, e.g. Organization/123")
        return value

    @field_validator("canonical_base")
    @classmethod
    def _canonical_base(cls, value: str) -> str:
        if not _CANONICAL_BASE.fullmatch(value):
            raise ValueError("must be an https URL without query, fragment or trailing '/'")
        return value

    @field_validator(
        "identifier_system", "device_identifier_system", "model_card_identifier_system"
    )
    @classmethod
    def _system_uri(cls, value: str) -> str:
        if value and not _SYSTEM_URI.fullmatch(value):
            raise ValueError("must be an absolute URI (urn:... or http(s)://...) without '|'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WritebackSettings:
        if self.organization_display and not self.organization:
            raise ValueError("writeback.organization_display needs writeback.organization")
        for name, default in _IDENTIFIER_SYSTEMS.items():
            if not getattr(self, name):
                setattr(self, name, f"{self.canonical_base}/sid/{default}")
        systems = {getattr(self, name) for name in _IDENTIFIER_SYSTEMS}
        if len(systems) != len(_IDENTIFIER_SYSTEMS):
            raise ValueError("writeback identifier, device and model-card systems must differ")
        return self


class AuditViewSettings(BaseModel):
    """The audit view of the web app (service/web/audit.py): page size, export and chart bounds."""

    page_size: int = Field(25, ge=5, le=200, description="verifications per page of results")
    csv_max_rows: int = Field(
        100_000, ge=1, le=1_000_000, description="rows of one CSV export, at most"
    )
    csv_batch_rows: int = Field(
        1000, ge=10, le=10_000, description="rows read per database step of a CSV export"
    )
    chart_default_days: int = Field(
        30, ge=1, le=366, description="days charted when the search gives no 'from' date"
    )
    chart_max_days: int = Field(366, ge=7, le=3660, description="longest period one chart shows")


class WebSettings(BaseModel):
    """The SMART-launched web app for people (service/web): off until an EHR registers it."""

    enabled: bool = False
    public_url: str | None = Field(
        None, description="how browsers reach Verity; the redirect URI is {public_url}/app/callback"
    )
    client_id: str | None = Field(None, description="Verity's client id at the EHR (SMART app)")
    # Confidential asymmetric client (private_key_jwt) when a key is set; else a public client.
    private_key_file: Path | None = None
    private_key: SecretStr | None = None
    key_id: str | None = None
    signing_alg: Literal["RS384", "ES384"] = "ES384"
    scopes: str = (
        "launch openid fhirUser profile patient/Patient.rs patient/MedicationRequest.rs "
        "patient/Medication.rs patient/ImagingStudy.rs patient/ServiceRequest.rs "
        "patient/Endpoint.rs user/Verification.rs user/Library.cud user/Library.rs"
    )
    session_secret: SecretStr | None = Field(
        None, description="signs the session cookie; at least 32 characters"
    )
    session_secret_file: Path | None = Field(
        None, description="the same, read from a file (a mounted Secret)"
    )
    session_idle_s: int = Field(900, ge=60, le=86_400, description="ends after this idle time")
    session_max_s: int = Field(
        28_800, ge=300, le=604_800, description="ends this long after launch"
    )
    launch_ttl_s: int = Field(600, ge=30, le=3600, description="a started launch must finish")
    cookie_secure: bool = True
    cookie_samesite: Literal["lax", "strict", "none"] = Field(
        "lax", description="'none' (with Secure) when the EHR shows Verity in an iframe"
    )
    frame_ancestors: list[str] = Field(
        default_factory=lambda: ["'self'"],
        description="CSP frame-ancestors: the EHR origins allowed to embed the app",
    )
    http_timeout_s: float = Field(10.0, gt=0, description="calls to the EHR's authorization server")
    audit: AuditViewSettings = Field(default_factory=AuditViewSettings)
    max_orders: int = Field(100, ge=1, le=1000, description="orders listed for one patient")

    @model_validator(mode="after")
    def _complete(self) -> WebSettings:
        if not self.enabled:
            return self
        if not self.public_url or not self.client_id:
            raise ValueError("the web app needs VERITY_WEB__PUBLIC_URL and VERITY_WEB__CLIENT_ID")
        secret = self.cookie_secret()
        if len(secret) < 32:
            raise ValueError("VERITY_WEB__SESSION_SECRET must be set, at least 32 characters")
        if self.cookie_samesite == "none" and not self.cookie_secure:
            raise ValueError("SameSite=None cookies must be Secure")
        return self

    def cookie_secret(self) -> str:
        """The session cookie's signing secret, from the environment or its file."""
        if self.session_secret is not None:
            return self.session_secret.get_secret_value()
        if self.session_secret_file is not None:
            try:
                return self.session_secret_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"cannot read VERITY_WEB__SESSION_SECRET_FILE: {exc}") from None
        return ""

    @property
    def standalone_scopes(self) -> str:
        """Opened directly, not from a chart: the EHR picks the patient (launch/patient)."""
        return " ".join("launch/patient" if s == "launch" else s for s in self.scopes.split())

    @property
    def redirect_uri(self) -> str:
        return f"{(self.public_url or '').rstrip('/')}/app/callback"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VERITY_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    environment: Literal["production", "development", "test"] = "production"
    data_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path("verity"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    database_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "VERITY_DATABASE_URL")
    )
    db: DbSettings = DbSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    fhir: FhirSettings = FhirSettings()
    models: ModelSettings = ModelSettings()
    limits: LimitSettings = LimitSettings()
    decision: DecisionSettings = DecisionSettings()
    search: SearchSettings = SearchSettings()
    outbox: OutboxSettings = OutboxSettings()
    writeback: WritebackSettings = WritebackSettings()
    pacs: PacsSettings = PacsSettings()
    imaging: ImagingSettings = ImagingSettings()
    grpc: GrpcSettings = GrpcSettings()
    web: WebSettings = WebSettings()

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        for name, value in self._secrets():
            if value.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} is a placeholder value; set a real secret")
        if self.web.enabled and not self.fhir.base_url:
            raise ValueError("the web app needs the EHR: set VERITY_FHIR__BASE_URL")
        if not self.auth.enabled and not is_loopback(self.server.host):
            raise ValueError(
                f"refusing to serve on non-loopback address {self.server.host!r} with auth "
                "disabled; enable VERITY_AUTH__ENABLED or bind to 127.0.0.1"
            )
        return self

    @model_validator(mode="after")
    def _development_issuer(self) -> Settings:
        """Trust the local development issuer only in development, auth on, no issuer set."""
        auth = self.auth.model_copy()  # a caller's AuthSettings may be shared between Settings
        dev = self.environment == "development" and auth.enabled
        unset = not (auth.issuer or auth.jwks_url)
        auth._development_key_dir = self.data_dir if dev and unset else None
        self.auth = auth
        return self

    def _secrets(self) -> list[tuple[str, str]]:
        found = []
        if self.fhir.private_key is not None:
            found.append(("VERITY_FHIR__PRIVATE_KEY", self.fhir.private_key.get_secret_value()))
        if self.pacs.password is not None:
            found.append(("VERITY_PACS__PASSWORD", self.pacs.password.get_secret_value()))
        if self.web.enabled:
            found.append(("VERITY_WEB__SESSION_SECRET", self.web.cookie_secret()))
        if self.web.private_key is not None:
            found.append(("VERITY_WEB__PRIVATE_KEY", self.web.private_key.get_secret_value()))
        return found

    @property
    def effective_database_url(self) -> str | None:
        """DATABASE_URL wins over VERITY_DB__URL; None means embedded."""
        chosen = self.database_url or self.db.url
        return chosen.get_secret_value() if chosen else None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation failures into ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
