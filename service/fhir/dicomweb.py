"""The PACS over DICOMweb: QIDO-RS series with counts, WADO-RS metadata and single instances.

httpx rather than the `dicomweb-client` library: that library is synchronous (requests), so
every call would need a thread, and its session would not share the service's async stack,
its auth flows (SMART client, STYLE habit 6), explicit timeouts or byte-bounded streaming.
The three calls Verity needs are plain GETs; multipart answers are parsed by python-multipart.

Built once per allowed base URL (`create_dicomweb_client`, which refuses a base that is not on
the allow-list) and closed with `aclose()`. Queries are by UID only: Orthanc 1.10 does not
decode percent-encoded query values, so wildcard or name queries would silently find nothing.
Instances are asked for as stored (`transfer-syntax=*`) and decoded by Verity's own decoder,
so a corrupt frame is Verity's finding, not a PACS 500. Transient failures (429/502/503/504,
connection errors, timeouts) are retried with backoff and jitter, honouring Retry-After;
afterwards DicomWebUnavailable. Log lines carry the status and the path template, never a UID.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydicom import Dataset

from service.config import PacsSettings
from service.errors import (
    DicomTooLarge,
    DicomWebAuthFailed,
    DicomWebRejected,
    DicomWebUnavailable,
    StudyNotInPacs,
    StudyTooLarge,
)
from service.fhir.dicom_multipart import SinglePartReader, content_type_params
from service.fhir.dicom_sources import SeriesInfo
from service.fhir.pacs import check_allowed
from service.fhir.pacs_auth import pacs_auth
from service.fhir.retry import RETRY_STATUSES, retry_delay

log = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
# The stored transfer syntax, whatever it is: Verity decodes (and judges) the pixels itself.
INSTANCE_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
SERIES = "studies/{study}/series"
INSTANCES = "studies/{study}/series/{series}/instances"
METADATA = "studies/{study}/series/{series}/metadata"
INSTANCE = "studies/{study}/series/{series}/instances/{instance}"
INSTANCE_METADATA = "studies/{study}/series/{series}/instances/{instance}/metadata"


def _no_bulk_data(*_args: str) -> None:
    """Bulk data URIs (pixels, large values) are not fetched with the metadata."""
    return None


class DicomWebClient:
    """One long-lived httpx client for one allowed DICOMweb base; a `StudySource`."""

    def __init__(
        self,
        base_url: str,
        settings: PacsSettings,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._http = httpx.AsyncClient(
            auth=auth,
            transport=transport,
            follow_redirects=False,  # a redirect could leave the allow-list
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.concurrency * 2),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> DicomWebClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the StudySource protocol ------------------------------------------------------

    async def series(self, study_uid: str) -> list[SeriesInfo]:
        """QIDO-RS series of the study with counts; StudyTooLarge before anything is fetched."""
        rows = await self._json(SERIES, {"study": study_uid}, params={"includefield": "00201209"})
        if not rows:
            raise StudyNotInPacs("the PACS holds no series for the study")
        merged: dict[str, SeriesInfo] = {}
        for row in rows:
            ds = Dataset.from_json(row, _no_bulk_data)
            series_uid = str(ds.get("SeriesInstanceUID", "") or "")
            if not series_uid:
                raise DicomWebRejected("QIDO-RS series answer without SeriesInstanceUID")
            count = ds.get("NumberOfSeriesRelatedInstances")
            if count in (None, ""):
                count = len(await self._json(INSTANCES, {"study": study_uid, "series": series_uid}))
            modality = ds.get("Modality")
            # A series listed twice is one the PACS holds under two patients (Orthanc files
            # instances per PatientID): one series here, its counts added.
            earlier = merged.get(series_uid)
            merged[series_uid] = SeriesInfo(
                series_uid,
                str(modality) if modality else (earlier.modality if earlier else None),
                int(count) + (earlier.instances if earlier else 0),
            )
        out = list(merged.values())
        total = sum(s.instances for s in out)
        if total > self.settings.max_instances:
            raise StudyTooLarge(
                f"study has {total} instances; the limit is {self.settings.max_instances}"
            )
        return out

    async def metadata(self, study_uid: str, series_uid: str) -> list[Dataset]:
        """WADO-RS metadata of one series, one Dataset per instance, bulk data not fetched. A PACS
        that answers 404 for a series it lists (Orthanc, for a series held under two patients)
        is read instance by instance (QIDO-RS instances, then each instance's metadata); an
        instance it cannot serve alone is left out, and its absence is for the checks to see."""
        ids = {"study": study_uid, "series": series_uid}
        try:
            rows = await self._json(METADATA, ids)
        except StudyNotInPacs:
            log.info("DICOMweb series metadata not found: reading it instance by instance")
            rows = []
            for listed in await self._json(INSTANCES, ids):
                sop = Dataset.from_json(listed, _no_bulk_data).get("SOPInstanceUID")
                if not sop:
                    continue
                try:
                    rows += await self._json(INSTANCE_METADATA, {**ids, "instance": str(sop)})
                except StudyNotInPacs:
                    continue
            if not rows:
                raise
        return [Dataset.from_json(row, _no_bulk_data) for row in rows]

    async def retrieve(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """One instance as stored, streamed and bounded by `max_instance_bytes`."""
        ids = {"study": study_uid, "series": series_uid, "instance": sop_uid}
        limit = self.settings.max_instance_bytes
        # No gzip: measured with Orthanc (bench/bench_imaging.py), compressing each instance cost
        # the PACS ~28 ms of CPU against 2-4 ms, and halved the study check's throughput.
        headers = {"Accept": INSTANCE_AS_STORED, "Accept-Encoding": "identity"}
        async with self._get(INSTANCE, ids, headers) as resp:
            content_type = resp.headers.get("Content-Type", "")
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit + 64 * 1024:
                raise DicomTooLarge(f"instance over the {limit}-byte limit")
            if content_type_params(content_type)[0] == "application/dicom":
                return await _read_bounded(resp, limit, DicomTooLarge)
            reader = SinglePartReader(content_type, limit)
            async for chunk in _chunks(resp):
                reader.feed(chunk)
            return reader.result()

    # --- transport ---------------------------------------------------------------------

    async def _json(
        self, template: str, ids: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """GET a DICOM JSON array, bounded by `max_metadata_bytes`."""
        async with self._get(template, ids, {"Accept": DICOM_JSON}, params) as resp:
            if resp.status_code == 204:
                return []
            body = await _read_bounded(resp, self.settings.max_metadata_bytes, DicomWebRejected)
        try:
            rows = json.loads(body) if body.strip() else []
        except ValueError:
            raise DicomWebRejected(f"{template}: answer is not JSON") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DicomWebRejected(f"{template}: answer is not a DICOM JSON array")
        return rows

    @asynccontextmanager
    async def _get(
        self,
        template: str,
        ids: Mapping[str, str],
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed 2xx answer, after retries; typed errors otherwise. One slot of the
        client's concurrency is held until the body is read or dropped."""
        url = f"{self.base_url}/{template.format(**ids)}"
        attempts = self.settings.max_retries + 1
        async with self._slots:
            for attempt in range(attempts):
                last = attempt == attempts - 1
                request = self._http.build_request("GET", url, headers=headers, params=params)
                try:
                    resp = await self._http.send(request, stream=True)
                except httpx.TransportError as exc:  # GET is safe to repeat
                    if last:
                        raise DicomWebUnavailable(f"{template}: {type(exc).__name__}") from None
                    log.info("DICOMweb GET %s: %s, retrying", template, type(exc).__name__)
                    await asyncio.sleep(self._delay(attempt, None))
                    continue
                try:
                    if resp.status_code < 300:
                        yield resp
                        return
                    if resp.status_code in RETRY_STATUSES and not last:
                        log.info("DICOMweb GET %s: HTTP %s, retrying", template, resp.status_code)
                        await asyncio.sleep(self._delay(attempt, resp))
                        continue
                    log.warning("DICOMweb GET %s: HTTP %s", template, resp.status_code)
                    raise _error_for(resp.status_code, template)
                finally:
                    await resp.aclose()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        s = self.settings
        return retry_delay(
            attempt,
            response,
            base_s=s.backoff_base_s,
            max_s=s.backoff_max_s,
            retry_after_max_s=s.retry_after_max_s,
        )


def _error_for(status: int, template: str) -> Exception:
    """The typed error for a non-2xx answer that is not (or no longer) worth a retry."""
    if status in (401, 403):
        return DicomWebAuthFailed(f"{template}: HTTP {status}")
    if status == 404:
        return StudyNotInPacs(f"{template}: not in the PACS")
    if status in RETRY_STATUSES or status >= 500:
        return DicomWebUnavailable(f"{template}: HTTP {status}")
    return DicomWebRejected(f"{template}: HTTP {status}")


async def _chunks(resp: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives; a connection lost mid-body is a retryable PACS failure."""
    try:
        async for chunk in resp.aiter_bytes():
            yield chunk
    except httpx.TransportError as exc:
        raise DicomWebUnavailable(f"body cut off: {type(exc).__name__}") from None


async def _read_bounded(resp: httpx.Response, limit: int, error: type[Exception]) -> bytes:
    """The whole body, or `error` as soon as it passes `limit` bytes."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise error(f"answer over the {limit}-byte limit")
    buf = bytearray()
    async for chunk in _chunks(resp):
        buf += chunk
        if len(buf) > limit:
            raise error(f"answer over the {limit}-byte limit")
    return bytes(buf)


async def create_dicomweb_client(
    base_url: str, settings: PacsSettings, *, smart_auth: httpx.Auth | None = None
) -> DicomWebClient:
    """A client for one DICOMweb base on the allow-list (PacsNotAllowed otherwise), with the
    configured credentials (ConfigError if they are incomplete)."""
    allowed = check_allowed(base_url, settings)
    return DicomWebClient(allowed, settings, auth=pacs_auth(settings, smart_auth))
