"""DicomWebClient against the real Orthanc + DICOMweb plugin, studies STOWed from the dataset."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom import Dataset

from service.config import PacsSettings
from service.errors import (
    DicomTooLarge,
    DicomWebAuthFailed,
    DicomWebUnavailable,
    PacsNotAllowed,
    StudyNotInPacs,
    StudyTooLarge,
)
from service.fhir.dicomweb import DicomWebClient, create_dicomweb_client
from service.fhir.pacs import pacs_base_for
from service.verify.imaging.study import EndpointInfo
from tests.conftest import SHARED_DATA
from tests.servers.orthanc import OrthancServer, start_orthanc

STUDIES = SHARED_DATA / "studies"
MULTI_SERIES = STUDIES / "dev-001" / "dicom"  # CT slice (JPEG 2000) + enhanced CT perfusion
COMPRESSED = STUDIES / "dev-041" / "dicom"  # 9-slice CT series, JPEG-LS lossless
MIXED = STUDIES / "dev-004" / "dicom"  # 9-slice CT (RLE), slice 5 of another patient


def _files(folder: Path) -> dict[str, Dataset]:
    """SOP Instance UID -> the file as read by pydicom."""
    return {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p) for p in folder.glob("*.dcm"))}


def _study_uid(files: dict[str, Dataset]) -> str:
    (uid,) = {ds.StudyInstanceUID for ds in files.values()}
    return str(uid)


@pytest.fixture(scope="module")
def stored(orthanc: OrthancServer) -> dict[str, dict[str, Dataset]]:
    """The two studies STOWed once; keyed by Study Instance UID."""
    out = {}
    for folder in (MULTI_SERIES, COMPRESSED):
        files = _files(folder)
        orthanc.stow(sorted(folder.glob("*.dcm")))
        out[_study_uid(files)] = files
    return out


def _settings(orthanc: OrthancServer, **overrides: object) -> PacsSettings:
    values: dict[str, object] = {
        "base_url": orthanc.base_url,
        "max_retries": 2,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    values.update(overrides)
    return PacsSettings.model_validate(values)


@pytest.fixture
async def client(orthanc: OrthancServer) -> AsyncIterator[DicomWebClient]:
    c = await create_dicomweb_client(orthanc.base_url, _settings(orthanc))
    yield c
    await c.aclose()


async def test_series_with_counts_and_modality(client, stored) -> None:
    for study_uid, files in stored.items():
        series = await client.series(study_uid)  # StudyNotInPacs here fails the test
        expected: dict[str, int] = {}
        for ds in files.values():
            expected[ds.SeriesInstanceUID] = expected.get(ds.SeriesInstanceUID, 0) + 1
        assert {s.uid: s.instances for s in series} == expected
        modalities = {ds.SeriesInstanceUID: ds.Modality for ds in files.values()}
        assert {s.uid: s.modality for s in series} == modalities
    assert len(await client.series(_study_uid(_files(MULTI_SERIES)))) == 2


async def test_metadata_equals_the_files_headers(client, stored) -> None:
    keywords = (
        "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber",
        "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Modality",
        "InstanceNumber", "StudyDate", "BodyPartExamined", "ImagePositionPatient", "Rows",
    )  # fmt: skip
    for study_uid, files in stored.items():
        seen = 0
        for s in await client.series(study_uid):
            headers = await client.metadata(study_uid, s.uid)
            assert len(headers) == s.instances
            for header in headers:
                original = files[header.SOPInstanceUID]
                for kw in keywords:
                    assert header.get(kw) == original.get(kw), kw
                assert "PixelData" not in header or not header.PixelData
                seen += 1
        assert seen == len(files)


async def test_retrieve_returns_the_stored_syntax_and_pixels(client, stored) -> None:
    decoded = compressed = 0
    for study_uid, files in stored.items():
        for sop_uid, original in files.items():
            data = await client.retrieve(study_uid, original.SeriesInstanceUID, sop_uid)
            got = pydicom.dcmread(io.BytesIO(data))
            assert got.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
            compressed += got.file_meta.TransferSyntaxUID.is_compressed
            assert got.PixelData == original.PixelData
            if decoded < 2:  # decoding proves the bytes are a usable object, not just equal
                assert np.array_equal(got.pixel_array, original.pixel_array)
                decoded += 1
    assert compressed == 10  # JPEG 2000 slice + 9 JPEG-LS slices, not transcoded by the PACS


async def test_unknown_study(client, stored) -> None:
    with pytest.raises(StudyNotInPacs):
        await client.series("1.2.826.0.1.3680043.8.498.1")
    with pytest.raises(StudyNotInPacs):
        await client.metadata("1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")


async def test_pacs_down_is_unavailable_after_the_configured_retries(orthanc, stored) -> None:
    attempts = 0

    class Counting(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal attempts
            attempts += 1
            return await super().handle_async_request(request)

    settings = _settings(orthanc, max_retries=3)
    study_uid = next(iter(stored))
    c = DicomWebClient(orthanc.base_url, settings, transport=Counting())
    orthanc.stop()
    try:
        with pytest.raises(DicomWebUnavailable) as err:
            await c.series(study_uid)
        assert err.value.retryable
        assert attempts == 4  # 1 + max_retries
    finally:
        orthanc.start()
    assert await c.series(study_uid)  # the same client works once the PACS is back
    await c.aclose()


async def test_instance_over_the_byte_limit(orthanc, stored) -> None:
    study_uid, files = next(iter(stored.items()))
    original = next(iter(files.values()))
    async with await create_dicomweb_client(
        orthanc.base_url, _settings(orthanc, max_instance_bytes=4096)
    ) as c:
        with pytest.raises(DicomTooLarge):
            await c.retrieve(study_uid, original.SeriesInstanceUID, original.SOPInstanceUID)
        assert await c.series(study_uid)  # the dropped connection left the client usable


async def test_study_over_the_instance_limit_fetches_nothing_more(orthanc, stored) -> None:
    study_uid = _study_uid(_files(COMPRESSED))
    before = len(orthanc.requests_seen())
    async with await create_dicomweb_client(
        orthanc.base_url, _settings(orthanc, max_instances=5)
    ) as c:
        with pytest.raises(StudyTooLarge):
            await c.series(study_uid)
    seen = orthanc.requests_seen()[before:]
    assert [path for _, path in seen] == [f"/dicom-web/studies/{study_uid}/series"]


async def test_endpoint_outside_the_allow_list_sends_nothing(orthanc, stored) -> None:
    settings = _settings(orthanc)
    # The same Orthanc under another host name: it would answer, so silence proves refusal.
    outside = orthanc.base_url.replace("127.0.0.1", "localhost")
    before = len(orthanc.requests_seen())
    with pytest.raises(PacsNotAllowed):
        pacs_base_for([EndpointInfo(outside, "dicom-wado-rs")], settings)
    with pytest.raises(PacsNotAllowed):
        await create_dicomweb_client(outside, settings)
    assert orthanc.requests_seen()[before:] == []
    allowed = pacs_base_for([EndpointInfo(orthanc.base_url + "/", "dicom-wado-rs")], settings)
    async with await create_dicomweb_client(allowed, settings) as c:
        assert await c.series(next(iter(stored)))
    assert len(orthanc.requests_seen()) > before  # the log does record requests


async def test_resent_instance_with_another_patient(tmp_path) -> None:
    """Orthanc trap: STOW of a SOP Instance it already holds, relabelled to another PatientID,
    answers success with no failed SOP. Orthanc 1.10 files instances under (PatientID, study,
    series, SOP), so it keeps BOTH copies under two patients: QIDO-RS then lists the series
    twice and WADO-RS answers 404 for it (the lookup is ambiguous). A verifier must read what
    the PACS serves, never trust what was sent to it."""
    orthanc = start_orthanc(tmp_path / "orthanc")  # its own PACS: this leaves it inconsistent
    try:
        paths = sorted(COMPRESSED.glob("*.dcm"))
        orthanc.stow(paths)
        study_uid = _study_uid(_files(COMPRESSED))
        ds = pydicom.dcmread(paths[0])
        ds.PatientID = "RESENT-OTHER-PATIENT"
        ds.save_as(tmp_path / "resent.dcm")
        answer = orthanc.stow([tmp_path / "resent.dcm"])
        assert answer.get("00081198", {}).get("Value", []) == []  # nothing reported failed
        assert len(answer["00081199"]["Value"]) == 1  # reported as stored
        async with await create_dicomweb_client(orthanc.base_url, _settings(orthanc)) as c:
            (series,) = await c.series(study_uid)  # listed twice by Orthanc: one series here
            assert series.uid == ds.SeriesInstanceUID and series.instances == len(paths) + 1
            # Its series metadata answers 404; read instance by instance, the SOP Instance held
            # twice cannot be served alone (404 too): it is missing, for the checks to see
            # (STUDY_INCOMPLETE when the ImagingStudy lists it).
            found = await c.metadata(study_uid, ds.SeriesInstanceUID)
            assert len(found) == len(paths) - 1
            assert ds.SOPInstanceUID not in {str(d.SOPInstanceUID) for d in found}
    finally:
        orthanc.stop()


@pytest.fixture(scope="module")
def basic_orthanc(tmp_path_factory: pytest.TempPathFactory) -> OrthancServer:
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-basic"), users={"verity": "pw-1"})
    server.stow(sorted(MULTI_SERIES.glob("*.dcm")))
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture(scope="module")
def bearer_orthanc(tmp_path_factory: pytest.TempPathFactory) -> OrthancServer:
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-bearer"), bearer_token="tok-1")
    server.stow(sorted(MULTI_SERIES.glob("*.dcm")))
    yield server  # type: ignore[misc]
    server.stop()


async def test_basic_auth(basic_orthanc, tmp_path) -> None:
    study_uid = _study_uid(_files(MULTI_SERIES))
    right = _settings(basic_orthanc, auth="basic", username="verity", password="pw-1")
    async with await create_dicomweb_client(basic_orthanc.base_url, right) as c:
        assert len(await c.series(study_uid)) == 2
    (tmp_path / "pw").write_text("pw-1\n")
    from_file = _settings(
        basic_orthanc, auth="basic", username="verity", password_file=tmp_path / "pw"
    )
    async with await create_dicomweb_client(basic_orthanc.base_url, from_file) as c:
        assert len(await c.series(study_uid)) == 2
    for bad in ({"password": "wrong"}, {}):
        auth = {"auth": "basic", "username": "verity", **bad} if bad else {"auth": "none"}
        async with await create_dicomweb_client(
            basic_orthanc.base_url, _settings(basic_orthanc, **auth)
        ) as c:
            with pytest.raises(DicomWebAuthFailed) as err:
                await c.series(study_uid)
            assert not err.value.retryable


async def test_bearer_token_from_file(bearer_orthanc, tmp_path) -> None:
    study_uid = _study_uid(_files(MULTI_SERIES))
    token = tmp_path / "token"
    token.write_text("tok-1\n")
    settings = _settings(bearer_orthanc, auth="bearer", token_file=token)
    async with await create_dicomweb_client(bearer_orthanc.base_url, settings) as c:
        assert len(await c.series(study_uid)) == 2
    token.write_text("tok-wrong")
    async with await create_dicomweb_client(bearer_orthanc.base_url, settings) as c:
        with pytest.raises(DicomWebAuthFailed):  # Orthanc's Lua filter answers 403
            await c.series(study_uid)


async def test_mixed_patient_study_is_split_by_orthanc(orthanc) -> None:
    """Orthanc trap: it files an instance under (PatientID, study, series, SOP), so a series
    whose instances carry two patients is kept as two Orthanc series with one UID: QIDO-RS
    lists it twice (one row per patient) and WADO-RS answers 404 for its series metadata. The
    client merges the rows and reads the metadata instance by instance, so the checks see
    every instance and both patients (MIXED_PATIENTS), as they do from files."""
    files = _files(MIXED)
    study_uid = _study_uid(files)
    assert len({ds.PatientID for ds in files.values()}) == 2
    orthanc.stow(sorted(MIXED.glob("*.dcm")))
    async with await create_dicomweb_client(orthanc.base_url, _settings(orthanc)) as c:
        (series,) = await c.series(study_uid)
        assert series.instances == len(files)
        found = await c.metadata(study_uid, series.uid)
        assert sorted(str(d.SOPInstanceUID) for d in found) == sorted(files)
        assert {str(d.PatientID) for d in found} == {ds.PatientID for ds in files.values()}
