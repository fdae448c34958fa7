"""DicomWebClient at its HTTP boundary (httpx.MockTransport): retries, Retry-After, typed
errors, bearer re-read, concurrency, and the multipart reader's edge cases. The same client is
tested against the real Orthanc in test_dicomweb.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from service.config import ConfigError, PacsSettings
from service.errors import (
    DicomTooLarge,
    DicomWebAuthFailed,
    DicomWebRejected,
    DicomWebUnavailable,
    StudyNotInPacs,
)
from service.fhir import dicomweb
from service.fhir.dicom_multipart import SinglePartReader
from service.fhir.dicomweb import DicomWebClient
from service.fhir.pacs_auth import FileBearerAuth, pacs_auth

BASE = "http://pacs.example/dicom-web"
STUDY, SERIES, SOP = "1.2.3.4", "1.2.3.4.5", "1.2.3.4.5.6"
SERIES_ROW = [
    {
        "0020000E": {"vr": "UI", "Value": [SERIES]},
        "00080060": {"vr": "CS", "Value": ["CT"]},
        "00201209": {"vr": "IS", "Value": [3]},
    }
]
PART10 = b"\0" * 128 + b"DICM" + b"payload\r\n--not-a-boundary\r\n" * 10


def _multipart(parts: list[bytes], boundary: str = "b0und", close: bool = True) -> bytes:
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
        for p in parts
    )
    return body + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


def _client(handler, **settings: object) -> DicomWebClient:
    values: dict[str, object] = {"max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.02}
    values.update(settings)
    return DicomWebClient(
        BASE, PacsSettings.model_validate(values), transport=httpx.MockTransport(handler)
    )


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's backoff sleeps instead of sleeping."""
    seen: list[float] = []

    async def fake_sleep(delay: float) -> None:
        seen.append(delay)

    monkeypatch.setattr(dicomweb.asyncio, "sleep", fake_sleep)
    return seen


async def test_429_honours_retry_after_capped(sleeps) -> None:
    answers = iter([("120", 429), ("2", 429), (None, 200)])

    def handler(request: httpx.Request) -> httpx.Response:
        retry_after, status = next(answers)
        headers = {"Retry-After": retry_after} if retry_after else {}
        return httpx.Response(status, headers=headers, json=SERIES_ROW if status == 200 else None)

    c = _client(handler, retry_after_max_s=5)
    assert [s.instances for s in await c.series(STUDY)] == [3]
    assert sleeps == [5.0, 2.0]


async def test_503_then_200_is_retried(sleeps, caplog) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503 if len(calls) == 1 else 200, json=SERIES_ROW)

    with caplog.at_level(logging.INFO, logger="service.fhir.dicomweb"):
        series = await _client(handler).series(STUDY)
    assert series[0].uid == SERIES and series[0].modality == "CT"
    assert calls == [f"/dicom-web/studies/{STUDY}/series"] * 2
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.01
    assert "studies/{study}/series: HTTP 503" in caplog.text
    assert STUDY not in caplog.text  # path template only, never a UID


@pytest.mark.parametrize("status", [502, 503, 504, 429])
async def test_retries_exhausted_is_unavailable(sleeps, status) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status)

    with pytest.raises(DicomWebUnavailable) as err:
        await _client(handler, max_retries=3).series(STUDY)
    assert calls == 4 and len(sleeps) == 3 and err.value.retryable


async def test_connection_errors_are_retried(sleeps) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json=SERIES_ROW)

    assert await _client(handler).series(STUDY)
    assert calls == 3


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, None, DicomWebAuthFailed),
        (403, None, DicomWebAuthFailed),
        (404, None, StudyNotInPacs),
        (200, [], StudyNotInPacs),
        (204, None, StudyNotInPacs),
        (400, None, DicomWebRejected),
        (302, None, DicomWebRejected),  # never followed: it could leave the allow-list
        (500, None, DicomWebUnavailable),
        (200, {"not": "a list"}, DicomWebRejected),
    ],
)
async def test_typed_errors(status, body, error) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Location": "http://evil.example/"} if status == 302 else {}
        return httpx.Response(status, json=body, headers=headers)

    with pytest.raises(error):
        await _client(handler).series(STUDY)


async def test_metadata_ignores_bulk_data_uris() -> None:
    row = {
        "00080018": {"vr": "UI", "Value": [SOP]},
        "00100020": {"vr": "LO", "Value": ["MRN-1"]},
        "7FE00010": {"vr": "OW", "BulkDataURI": "http://pacs.example/bulk/1"},
    }
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url.path)
        return httpx.Response(200, json=[row])

    (ds,) = await _client(handler).metadata(STUDY, SERIES)
    assert ds.SOPInstanceUID == SOP and ds.PatientID == "MRN-1"
    assert fetched == [f"/dicom-web/studies/{STUDY}/series/{SERIES}/metadata"]


async def test_retrieve_asks_for_the_stored_syntax_and_parses_multipart() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept"] == dicomweb.INSTANCE_AS_STORED
        assert request.headers["Accept-Encoding"] == "identity"  # no gzip of pixel data
        ct = 'multipart/related; type="application/dicom"; boundary="b0und"'
        return httpx.Response(200, headers={"Content-Type": ct}, content=_multipart([PART10]))

    assert await _client(handler).retrieve(STUDY, SERIES, SOP) == PART10


async def test_retrieve_declared_too_large_is_refused_unread() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Type": "application/dicom", "Content-Length": str(10**9)},
            content=b"x",
        )

    with pytest.raises(DicomTooLarge):
        await _client(handler, max_instance_bytes=4096).retrieve(STUDY, SERIES, SOP)


async def test_concurrency_is_bounded() -> None:
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, headers={"Content-Type": "application/dicom"}, content=PART10)

    c = _client(handler, concurrency=2)
    results = await asyncio.gather(*(c.retrieve(STUDY, SERIES, str(i)) for i in range(8)))
    assert results == [PART10] * 8 and peak == 2


# --- multipart reader --------------------------------------------------------------------

CT = 'multipart/related; type="application/dicom"; boundary=b0und'


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_multipart_any_chunking(chunk) -> None:
    body = _multipart([PART10])
    reader = SinglePartReader(CT, 4096)
    for i in range(0, len(body), chunk):
        reader.feed(body[i : i + chunk])
    assert reader.result() == PART10


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        (CT, _multipart([PART10, PART10]), DicomWebRejected),  # two instances for one
        (CT, _multipart([PART10], close=False), DicomWebUnavailable),  # cut off: retryable
        (CT, _multipart([]), DicomWebRejected),  # closing boundary only: no part
        (CT, b"garbage with no boundary at all", DicomWebRejected),
        (CT, _multipart([b"x" * 5000]), DicomTooLarge),  # part over the limit
        ("multipart/related; type=application/dicom", b"", DicomWebRejected),  # no boundary
        ("application/json", b"[]", DicomWebRejected),
    ],
)
def test_multipart_refusals(content_type, body, error) -> None:
    with pytest.raises(error):
        reader = SinglePartReader(content_type, 4096)
        reader.feed(body)
        reader.result()


def test_multipart_body_bound_counts_everything() -> None:
    reader = SinglePartReader(CT, 1024)
    with pytest.raises(DicomTooLarge):
        reader.feed(b"\r\n" * (reader.max_body_bytes // 2 + 1))


# --- credentials -------------------------------------------------------------------------


async def test_bearer_token_reread_once_on_401(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old\n")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        ok = request.headers["Authorization"] == "Bearer new"
        return httpx.Response(200 if ok else 401, json=SERIES_ROW)

    auth = pacs_auth(PacsSettings(auth="bearer", token_file=token))
    assert isinstance(auth, FileBearerAuth)
    c = DicomWebClient(BASE, PacsSettings(), auth=auth, transport=httpx.MockTransport(handler))
    token.write_text("new")  # rotated after the client was built
    assert await c.series(STUDY)
    assert seen == ["Bearer old", "Bearer new"]
    seen.clear()
    token.write_text("newer-but-still-wrong")
    auth._token = "stale"
    with pytest.raises(DicomWebAuthFailed):
        await c.series(STUDY)
    assert seen == ["Bearer stale", "Bearer newer-but-still-wrong"]  # once, never a loop


@pytest.mark.parametrize(
    "settings",
    [
        {"auth": "bearer"},
        {"auth": "bearer", "token_file": "/nonexistent/token"},
        {"auth": "basic", "password": "x"},
        {"auth": "basic", "username": "u"},
        {"auth": "basic", "username": "u", "password_file": "/nonexistent/pw"},
        {"auth": "smart"},
    ],
)
def test_incomplete_credentials_are_refused_at_construction(settings) -> None:
    with pytest.raises(ConfigError):
        pacs_auth(PacsSettings.model_validate(settings))


def test_empty_token_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        pacs_auth(PacsSettings(auth="bearer", token_file=tmp_path / "t"))


def test_smart_auth_is_passed_through() -> None:
    smart = httpx.BasicAuth("stand-in", "for SmartBackendAuth")
    assert pacs_auth(PacsSettings(auth="smart"), smart) is smart
    assert pacs_auth(PacsSettings(auth="none"), smart) is None
