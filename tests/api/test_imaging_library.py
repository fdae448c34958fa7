"""POST/GET/DELETE /v1/imaging-references on the real app (its lifespan loads the imaging
models), real tokens from the real authorization server, a database of its own, real DICOM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.config import (
    ContentSettings,
    ImagingLibrarySettings,
    ImagingSettings,
    LimitSettings,
)
from service.evaluation.studies import read_case
from service.store import migrate
from service.verify.imaging.results import FindingCode, Outcome
from service.workflows.imaging.check import check_study
from service.workflows.imaging.sources import folder_source
from tests.conftest import SHARED_DATA, api_settings, app_client

STUDIES = SHARED_DATA / "studies"
# Another file of the WG04 RG3 lower-leg radiograph whose pixels case dev-029 files as a chest.
LEG = SHARED_DATA / "dicom" / "other" / "wg04_RG3_cr_extremity_j2k_lossless.dcm"
CHEST = next((STUDIES / "archive" / "dev-a01" / "dicom").glob("*.dcm"))
ECHO = next((STUDIES / "dev-012" / "dicom").glob("*.dcm"))  # a 30-frame echocardiogram
URL = "/v1/imaging-references"
MAX_FRAMES = 20  # the test app refuses DICOM of more frames (the echo has more)


@pytest.fixture(scope="module")
async def app(
    make_database: Any, auth_server: Any, api_token: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Any]:
    url: str = make_database("imglibapi")
    await migrate.upgrade(url)
    settings = api_settings(
        url, auth_server, tmp_path_factory.mktemp("imglib"),
        limits=LimitSettings(max_dicom_frames=MAX_FRAMES),
        imaging=ImagingSettings(
            library=ImagingLibrarySettings(max_files=2),
            content=ContentSettings(plausibility=False),  # the references alone decide here
        ),
    )  # fmt: skip
    async with app_client(settings, api_token) as client:
        yield client


def _files(*paths: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (p.name, p.read_bytes(), "application/dicom")) for p in paths]


async def _content(app: Any, case: str) -> Any:
    state, folder = app.app.state, STUDIES / case
    checked = await check_study(
        state.settings, await read_case(folder), folder_source(folder / "dicom", state.settings.pacs),
        state.db.pool.connection, embedder=state.image_embedder,
    )  # fmt: skip
    return next(c for c in checked.verification.checks if c.code is FindingCode.CONTENT_MISMATCH)


async def test_enrolled_reference_is_listed_used_by_a_check_and_removed(app):
    assert (await _content(app, "dev-029")).outcome is Outcome.NOT_APPLICABLE

    form = {"modality": "cr", "body_part": "leg", "laterality": "R", "view": "AP"}
    resp = await app.post(URL, files=_files(LEG), data=form)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["label"] == {"modality": "CR", "body_part": "LEG", "laterality": "R", "view": "AP"}
    assert body["images"] == 1 and list(body["embedded"].values()) == [1]
    version = next(iter(body["embedded"]))
    study_uid = body["references"][0]["study_uid"]
    assert body["references"][0]["header_modality"] == "CR"

    listed = (await app.get(URL, params={"source": "reference", "body_part": "leg"})).json()
    assert listed["total"] == 1 and listed["items"][0]["study_uid"] == study_uid
    assert listed["items"][0]["model_versions"] == [version]
    assert [(c["modality"], c["body_part"], c["model_version"], c["images"])
            for c in listed["counts"]] == [("CR", "LEG", version, 1)]  # fmt: skip

    after = await _content(app, "dev-029")  # header and order say CR chest; pixels: a leg
    assert after.outcome is Outcome.FAILED, after.summary
    assert after.evidence["images"][0]["nearest"][0]["study_uid"] == study_uid

    assert (await app.delete(f"{URL}/{study_uid}")).status_code == 204
    gone = await app.delete(f"{URL}/{study_uid}")
    assert gone.status_code == 404 and gone.json()["code"] == "VERITY-4204"
    assert (await app.get(URL, params={"source": "reference"})).json()["total"] == 0
    assert (await _content(app, "dev-029")).outcome is Outcome.NOT_APPLICABLE


async def test_several_files_in_one_enrolment_and_paging(app):
    form = {"modality": "CR", "body_part": "CHEST"}
    resp = await app.post(URL, files=_files(CHEST, LEG), data=form)
    assert resp.status_code == 201, resp.text
    studies = [r["study_uid"] for r in resp.json()["references"]]
    try:
        page = (await app.get(URL, params={"source": "reference", "limit": 1})).json()
        assert page["total"] == 2 and len(page["items"]) == 1 and page["limit"] == 1
        rest = (await app.get(URL, params={"source": "reference", "offset": 1})).json()
        assert {page["items"][0]["study_uid"], rest["items"][0]["study_uid"]} == set(studies)
    finally:
        for uid in studies:
            await app.delete(f"{URL}/{uid}")


@pytest.mark.parametrize(
    ("form", "paths", "status", "code"),
    [
        ({"modality": "CR", "body_part": "NOSE"}, [LEG], 422, "VERITY-4000"),
        ({"modality": "SR", "body_part": "CHEST"}, [LEG], 422, "VERITY-4000"),
        ({"modality": "CR", "body_part": "LEG", "laterality": "X"}, [LEG], 422, "VERITY-4000"),
        ({"modality": "CR", "body_part": "LEG", "view": "v" * 65}, [LEG], 422, "VERITY-4000"),
        ({"body_part": "LEG"}, [LEG], 422, "VERITY-4000"),
        ({"modality": "CR", "body_part": "LEG"}, [], 422, "VERITY-4000"),
        ({"modality": "CR", "body_part": "LEG"}, [LEG, LEG, LEG], 422, "VERITY-4000"),
        ({"modality": "US", "body_part": "HEART"}, [ECHO], 413, "VERITY-4401"),
    ],
)
async def test_refusals_are_problems_and_store_nothing(app, form, paths, status, code):
    resp = await app.post(URL, files=_files(*paths) or None, data=form)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == code
    assert (await app.get(URL, params={"source": "reference"})).json()["total"] == 0


async def test_a_file_that_is_not_dicom_refuses_the_whole_upload(app):
    files = [*_files(CHEST), ("files", ("x.dcm", b"not a DICOM file at all", "application/dicom"))]
    resp = await app.post(URL, files=files, data={"modality": "CR", "body_part": "CHEST"})
    assert resp.status_code == 422 and resp.json()["code"] == "VERITY-4400"
    assert (await app.get(URL, params={"source": "reference"})).json()["total"] == 0


async def test_reading_needs_the_read_scope_and_enrolling_the_write_scope(app, auth_server):
    reader = auth_server.mint_token(
        "api-caller", scope="system/*.read", resource=auth_server.api_audience
    )
    headers = {"Authorization": f"Bearer {reader['access_token']}"}
    assert (await app.get(URL, headers=headers)).status_code == 200
    denied = await app.post(URL, files=_files(LEG), data={"modality": "CR", "body_part": "LEG"},
                            headers=headers)  # fmt: skip
    assert denied.status_code == 403 and denied.json()["code"] == "VERITY-4030"
    gone = await app.delete(f"{URL}/1.2.3", headers=headers)
    assert gone.status_code == 403
    anonymous = await app.get(URL, headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "VERITY-4010"
