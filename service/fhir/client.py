"""Async FHIR R4 client: read, vread, search with paging, conditional create, transactions.

Created once per process (`create_fhir_client`) and closed with `aclose()`. Upstream failures
become the typed errors of service/errors.py; transient ones (429/502/503/504, timeouts) are
retried with exponential backoff and full jitter, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Generator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from service.auth.smart_client import SmartBackendAuth
from service.config import FhirSettings
from service.errors import FhirReferenceInvalid, FhirRejected, FhirUnavailable
from service.fhir.errors import error_for
from service.fhir.retry import RETRY_STATUSES, retry_delay

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
Resource = dict[str, Any]


class FhirClient:
    """One long-lived httpx client for the EHR's FHIR server."""

    def __init__(
        self,
        settings: FhirSettings,
        *,
        auth: httpx.Auth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.base_url:
            raise FhirReferenceInvalid("no FHIR server configured (VERITY_FHIR__BASE_URL)")
        self.base_url = settings.base_url.rstrip("/")
        self.settings = settings
        self.auth = auth
        self._origin = urlsplit(self.base_url)[:2]
        self._request_auth: httpx.Auth | None = None  # a person's token: see for_user()
        self._owns_http = True
        self._http = httpx.AsyncClient(
            auth=auth,
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            headers={"Accept": FHIR_JSON},
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    def for_user(self, access_token: str) -> FhirClient:
        """The same server and connection pool, speaking with a person's token (SMART launch):
        user-level access, never Verity's backend credentials. Not closed on its own."""
        clone = copy.copy(self)
        clone.auth = None
        clone._request_auth = BearerToken(access_token)
        clone._owns_http = False
        return clone

    async def aclose(self) -> None:
        if not self._owns_http:
            return
        await self._http.aclose()
        if isinstance(self.auth, SmartBackendAuth):
            await self.auth.aclose()

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            if urlsplit(path)[:2] != self._origin:
                raise FhirReferenceInvalid("URL points outside the configured FHIR server")
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        s = self.settings
        return retry_delay(
            attempt,
            response,
            base_s=s.backoff_base_s,
            max_s=s.backoff_max_s,
            retry_after_max_s=s.retry_after_max_s,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise the matching typed error."""
        url = self._url(path)
        hdrs = dict(headers or {})
        if json is not None:
            hdrs["Content-Type"] = FHIR_JSON
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = await self._http.request(
                    method, url, json=json, params=params, headers=hdrs,
                    auth=self._request_auth or httpx.USE_CLIENT_DEFAULT,
                )  # fmt: skip
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if last:
                    raise FhirUnavailable(f"{what}: {type(exc).__name__}") from None
                await asyncio.sleep(self._delay(attempt, None))
                continue
            except httpx.TransportError as exc:  # sent, maybe processed: retry only if safe
                if last or not idempotent:
                    raise FhirUnavailable(f"{what}: {type(exc).__name__}") from None
                await asyncio.sleep(self._delay(attempt, None))
                continue
            except httpx.HTTPError as exc:  # decoding, redirects: not worth a retry
                raise FhirUnavailable(f"{what}: {type(exc).__name__}") from None
            if resp.status_code < 300:
                return resp
            if resp.status_code in RETRY_STATUSES and not last:
                log.info("FHIR %s %s: HTTP %s, retrying", method, what, resp.status_code)
                await asyncio.sleep(self._delay(attempt, resp))
                continue
            raise error_for(resp.status_code, _json_or_none(resp), what)
        raise FhirUnavailable(f"{what}: retries exhausted")  # pragma: no cover

    async def read(self, resource_type: str, rid: str) -> Resource:
        """GET [base]/Type/id."""
        resp = await self.request("GET", f"{resource_type}/{rid}", what=f"read {resource_type}")
        return _body(resp)

    async def vread(self, resource_type: str, rid: str, version: str) -> Resource:
        """GET [base]/Type/id/_history/vid."""
        resp = await self.request(
            "GET", f"{resource_type}/{rid}/_history/{version}", what=f"vread {resource_type}"
        )
        return _body(resp)

    async def search_pages(
        self, resource_type: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[Resource]:
        """Yield searchset Bundles, following `next` only on the FHIR server's own origin."""
        url: str | None = resource_type
        query = dict(params or {})
        for _ in range(self.settings.max_pages):
            if url is None:
                return
            resp = await self.request(
                "GET", url, params=query or None, what=f"search {resource_type}"
            )
            bundle = _body(resp)
            yield bundle
            query = {}
            url = next(
                (lk.get("url") for lk in bundle.get("link") or [] if lk.get("relation") == "next"),
                None,
            )
        if url is not None:
            log.warning(
                "search %s stopped after max_pages=%d", resource_type, self.settings.max_pages
            )

    async def search(
        self, resource_type: str, params: Mapping[str, str] | None = None
    ) -> list[Resource]:
        """Every matching resource (search mode `match`) across pages."""
        found: list[Resource] = []
        async for bundle in self.search_pages(resource_type, params):
            for entry in bundle.get("entry") or []:
                mode = (entry.get("search") or {}).get("mode", "match")
                if mode == "match" and "resource" in entry:
                    found.append(entry["resource"])
        return found

    async def create(self, resource: Resource, *, if_none_exist: str | None = None) -> Resource:
        """POST a resource; with If-None-Exist the server returns the existing match instead."""
        rtype = resource["resourceType"]
        headers = {"Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        resp = await self.request(
            "POST",
            rtype,
            json=resource,
            headers=headers,
            what=f"create {rtype}",
            idempotent=bool(if_none_exist),
        )
        return (
            _body(resp)
            if resp.content
            else {"resourceType": rtype, "location": resp.headers.get("Location")}
        )

    async def create_if_none_exist(
        self, resource: Resource, identifier_system: str, identifier_value: str
    ) -> Resource:
        """Conditional create on a stable business identifier (idempotent)."""
        query = httpx.QueryParams({"identifier": f"{identifier_system}|{identifier_value}"})
        return await self.create(resource, if_none_exist=str(query))

    async def transaction(self, bundle: Resource) -> Resource:
        """POST a transaction Bundle; idempotent when its creates carry ifNoneExist."""
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            raise FhirRejected("not a transaction Bundle")
        idempotent = all(
            (e.get("request") or {}).get("method") != "POST"
            or (e.get("request") or {}).get("ifNoneExist")
            for e in bundle.get("entry") or []
        )
        resp = await self.request(
            "POST", "", json=bundle, what="transaction", idempotent=idempotent
        )
        result = _body(resp)
        for i, entry in enumerate(result.get("entry") or []):
            status = str((entry.get("response") or {}).get("status") or "200")[:3]
            if status.isdigit() and int(status) >= 400:
                outcome = (entry.get("response") or {}).get("outcome")
                raise error_for(int(status), outcome, f"transaction entry {i}")
        return result


class BearerToken(httpx.Auth):
    """A fixed bearer token (a person's, from the SMART launch); no renewal: when it ends,
    the person launches again."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self._header
        yield request


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _body(resp: httpx.Response) -> Resource:
    body = _json_or_none(resp)
    if not isinstance(body, dict) or "resourceType" not in body:
        raise FhirUnavailable(f"FHIR server answered HTTP {resp.status_code} without a resource")
    return body


async def create_fhir_client(settings: FhirSettings) -> FhirClient:
    """The app's FHIR client: SMART Backend Services auth when a client_id is configured."""
    auth = SmartBackendAuth(settings) if settings.client_id else None
    client = FhirClient(settings, auth=auth)
    if auth is not None:
        try:
            await auth.discover()
        except FhirUnavailable:
            log.warning("FHIR server not reachable at start-up; discovery will be retried")
    return client
