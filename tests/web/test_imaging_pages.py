"""The imaging check pages against the real components: a labelled study STOWed into Orthanc,
its Patient / ServiceRequest / ImagingStudy on the FHIR server, a person signed in with a real
token, the check started from the study page and run by the app's own worker, the result page,
its thumbnails, the person's decision written back to the FHIR server, and the refusals."""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from service.store import jobs
from tests.web.conftest import AUDITOR_SCOPES, sign_in
from tests.workflows.test_imaging_e2e import EXPECTED, STUDIES, wait_until
from tests.workflows.test_imaging_e2e import Ehr as StudyEhr

pytestmark = pytest.mark.slow

RADIOGRAPHER_SCOPES = (
    "launch openid fhirUser user/Patient.rs user/MedicationRequest.rs user/ImagingStudy.rs "
    "user/ServiceRequest.rs "
    "user/Verification.rs"
)
CLEAN, LATERALITY = "dev-018", "dev-036"  # DX chest PA; left tibia ordered, right leg imaged


class Study:
    """One seeded case: its FHIR references and the PACS holding its DICOM."""

    def __init__(self, ehr: StudyEhr, orthanc: Any, case: str) -> None:
        orthanc.stow(sorted((STUDIES / case / "dicom").glob("*.dcm")))
        self.case = case
        self.ref = ehr.seed(case, address=orthanc.base_url)
        found = ehr.search("ImagingStudy", _id=self.ref.split("/")[1])
        self.patient = found[0]["subject"]["reference"]


@pytest.fixture(scope="module")
def studies(fhir_server: Any, orthanc: Any) -> dict[str, Study]:
    ehr = StudyEhr(fhir_server)
    return {case: Study(ehr, orthanc, case) for case in (CLEAN, LATERALITY)}


async def sign_in_for(app: httpx.AsyncClient, auth_server: Any, study: Study, **kw: Any) -> str:
    kw.setdefault("fhir_user", "Practitioner/rad-1")
    kw.setdefault("name", "Robin Radiographer")
    return await sign_in(app, auth_server, patient=study.patient, scopes=RADIOGRAPHER_SCOPES, **kw)


async def study_link(app: httpx.AsyncClient) -> str:
    home = await app.get("/app/")
    assert home.status_code == 200, home.text
    links = re.findall(r'href="(/app/studies/[0-9a-f]+)"', home.text)
    assert len(links) == 1, home.text
    return links[0]


async def start(app: httpx.AsyncClient, link: str, csrf: str) -> str:
    """Open the study page, press "Check this study"; the 303's target (the progress page)."""
    page = await app.get(link)
    assert page.status_code == 200, page.text
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)
    r = await app.post(f"{link}/check", data={"csrf_token": csrf, "nonce": nonce})
    assert r.status_code == 303, r.text
    again = await app.post(f"{link}/check", data={"csrf_token": csrf, "nonce": nonce})
    assert again.headers["location"] == r.headers["location"]  # a re-sent form: one check
    return str(r.headers["location"])


async def until_done(
    app: httpx.AsyncClient, page: str, timeout: float = 90
) -> list[dict[str, Any]]:
    """Poll the progress JSON as verity.js does; every answer seen, the last one done."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        r = await app.get(f"{page}/progress")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        seen.append(r.json())
        if seen[-1]["done"]:
            return seen
        assert time.monotonic() < deadline, seen[-1]
        await asyncio.sleep(0.2)


checked: dict[str, tuple[str, str]] = {}  # case -> (result page, study link), one check each


async def checked_case(app: httpx.AsyncClient, auth_server: Any, study: Study) -> tuple[str, str]:
    """Check the case once from its study page (cached per module)."""
    if study.case not in checked:
        csrf = await sign_in_for(app, auth_server, study)
        link = await study_link(app)
        page = await start(app, link, csrf)
        seen = await until_done(app, page)
        assert seen[-1]["state"] == "done" and seen[-1]["text"].startswith("Finished"), seen
        checked[study.case] = (page, link)
    return checked[study.case]


async def test_a_clean_study_is_checked_from_its_page_and_passes_with_table_and_thumbnails(
    imaging_web_app, auth_server, studies
):
    study = studies[CLEAN]
    page, _ = await checked_case(imaging_web_app, auth_server, study)
    await sign_in_for(imaging_web_app, auth_server, study)  # a new session: new handles
    html = (await imaging_web_app.get(await study_link(imaging_web_app))).text
    assert "Check this study" in html and "Chest" in html
    assert f'href="{page}"' in html  # the check is now listed among the earlier checks

    r = await imaging_web_app.get(page)
    assert r.status_code == 200, r.text
    html = r.text
    assert re.search(r"<title>Imaging check result — Verity</title>", html)
    assert 'id="outcome"' in html and ">Passed<" in html
    assert "The images agree with the order and the patient." in html
    assert (
        "<caption>Each check: what the DICOM headers say beside what the EHR says</caption>" in html
    )
    rows = re.findall(r'<tr data-check="([A-Z_]+)" class="check-([a-z_]+)">', html)
    assert {code for code, _ in rows} >= {
        "PATIENT_ID_MISMATCH",
        "MODALITY_MISMATCH",
        "BODY_PART_MISMATCH",
        "DUPLICATE_IMAGE",
    }
    assert "failed" not in {outcome for _, outcome in rows}
    modality = re.search(r'data-check="MODALITY_MISMATCH".*?</tr>', html, re.S).group(0)
    assert '<th scope="row">Modality</th>' in modality and modality.count("DX") == 2
    assert 'id="decision"' not in html  # a passed study needs no decision
    csrf = await sign_in_for(imaging_web_app, auth_server, study)
    nothing = await imaging_web_app.post(f"{page}/decision",
                                         data={"csrf_token": csrf, "action": "confirmed"})  # fmt: skip
    assert nothing.status_code == 409 and "VERITY-4604" in nothing.text
    for ref in (study.ref, study.patient):
        assert ref.split("/")[1] not in html  # no FHIR ids on the page's links

    thumbs = re.findall(r'<img src="(/app/verifications/[0-9a-f-]+/thumbnails/\d+)"[^>]*alt="([^"]+)"',
                        html)  # fmt: skip
    assert len(thumbs) == 1, html  # one image in the study
    src, alt = thumbs[0]
    assert alt.startswith("Series ") and "DX" in alt and "CHEST" in alt and "DICOM header" in alt
    png = await imaging_web_app.get(src)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert (
        image.size == (256, 256) and len(np.unique(np.asarray(image.convert("L")))) > 32
    )  # windowed
    missing = await imaging_web_app.get(src.rsplit("/", 1)[0] + "/2")
    assert missing.status_code == 404


async def test_a_laterality_mismatch_is_decided_and_the_decision_reaches_the_ehr(
    imaging_web_app, auth_server, fhir_server, studies
):
    study = studies[LATERALITY]
    page, _ = await checked_case(imaging_web_app, auth_server, study)
    csrf = await sign_in_for(imaging_web_app, auth_server, study)
    html = (await imaging_web_app.get(page)).text
    assert ">Failed<" in html and 'data-finding="LATERALITY_MISMATCH"' in html
    row = re.search(r'data-check="LATERALITY_MISMATCH" class="check-failed">.*?</tr>', html, re.S)
    assert row and "Problem found" in row.group(0)
    assert {"LATERALITY_MISMATCH"} == EXPECTED[LATERALITY]
    assert 'id="decision"' in html and 'name="action"' in html

    unsaid = await imaging_web_app.post(
        f"{page}/decision", data={"csrf_token": csrf, "action": "other", "reason": " "}
    )
    assert unsaid.status_code == 422 and "VERITY-4000" in unsaid.text
    r = await imaging_web_app.post(
        f"{page}/decision", data={"csrf_token": csrf, "action": "returned", "reason": ""}
    )
    assert r.status_code == 303, r.text
    html = (await imaging_web_app.get(page)).text
    assert "Robin Radiographer" in html and 'name="action"' not in html

    ehr = StudyEhr(fhir_server)

    def mitigated() -> list[dict[str, Any]]:
        issues = ehr.search("DetectedIssue", implicated=study.ref)
        return [i for i in issues if i.get("mitigation")]

    issues = await wait_until(imaging_web_app, mitigated)
    mitigation = issues[0]["mitigation"][-1]
    assert mitigation["author"]["reference"] == "Practitioner/rad-1"
    provenance = await wait_until(
        imaging_web_app,
        lambda: [p for p in ehr.search("Provenance", target=f"DetectedIssue/{issues[0]['id']}")
                 if any(a.get("who", {}).get("reference") == "Practitioner/rad-1"
                        for a in p.get("agent") or [])],
    )  # fmt: skip
    assert provenance


async def test_the_progress_page_works_without_js_and_declares_its_progress_url(
    imaging_web_app, auth_server, studies
):
    """A running job (held by a lease no worker can take) as the page and the JSON show it."""
    study = studies[CLEAN]
    await sign_in_for(imaging_web_app, auth_server, study)
    await study_link(imaging_web_app)  # the study is this session's: it was shown on its chart
    job_id = str(uuid.uuid4())
    async with imaging_web_app.app.state.db.pool.connection() as conn, conn.transaction():
        await jobs.submit(conn, jobs.NewJob(id=job_id, study_ref=study.ref, request_sha256="x"))
        await conn.execute(
            """UPDATE imaging_job SET state = 'running', patient_ref = %s,
                      next_attempt_at = now() + interval '1 hour', progress = %s WHERE id = %s""",
            (study.patient, '{"instances_expected": 5, "instances_found": 5, '
             '"instances_fetched": 2, "instances_checked": 1}', job_id),
        )  # fmt: skip
    r = await imaging_web_app.get(f"/app/imaging/{job_id}")
    assert r.status_code == 200
    assert f'data-progress-url="/app/imaging/{job_id}/progress"' in r.text
    assert f'<a href="/app/imaging/{job_id}" id="refresh">Refresh</a>' in r.text
    assert "2 of 5 fetched, 1 decoded" in r.text
    body = (await imaging_web_app.get(f"/app/imaging/{job_id}/progress")).json()
    assert body["done"] is False and "2 of 5 fetched" in body["text"]
    async with imaging_web_app.app.state.db.pool.connection() as conn:
        await conn.execute("DELETE FROM imaging_job WHERE id = %s", (job_id,))


async def test_refusals_another_patients_study_thumbnail_and_a_form_without_csrf(
    imaging_web_app, auth_server, studies
):
    page, link = await checked_case(imaging_web_app, auth_server, studies[CLEAN])
    other = studies[LATERALITY]
    csrf = await sign_in_for(imaging_web_app, auth_server, other)
    own_link = await study_link(imaging_web_app)

    no_csrf = await imaging_web_app.post(f"{own_link}/check", data={"nonce": uuid.uuid4().hex})
    assert no_csrf.status_code == 403 and "VERITY-4602" in no_csrf.text

    # The clean study's handle smuggled into this session: the page still checks its subject.
    async with imaging_web_app.app.state.db.pool.connection() as conn:
        await conn.execute(
            """UPDATE web_session SET data = jsonb_set(data, '{handles,feedfeedfeedfeedfeed}',
                      to_jsonb(%s::text)) WHERE data->>'csrf' = %s""",
            (studies[CLEAN].ref, csrf),
        )
    foreign = await imaging_web_app.get("/app/studies/feedfeedfeedfeedfeed")
    assert foreign.status_code == 403 and "VERITY-4603" in foreign.text
    unknown = await imaging_web_app.get(link)  # a handle another session was given
    assert unknown.status_code == 404

    for url in (page, f"{page}/progress", page.replace("/app/imaging/", "/app/verifications/")
                + "/thumbnails/1"):  # fmt: skip
        r = await imaging_web_app.get(url)
        assert r.status_code == 403 and "VERITY-4603" in r.text, url
    decide = await imaging_web_app.post(
        f"{page}/decision", data={"csrf_token": csrf, "action": "confirmed"}
    )
    assert decide.status_code == 403 and "VERITY-4603" in decide.text

    # An auditor (no launch patient, Verification.rs) may see any verification and its images.
    await sign_in(imaging_web_app, auth_server, patient=None, fhir_user="Practitioner/aud-1",
                  scopes=AUDITOR_SCOPES)  # fmt: skip
    audit = await imaging_web_app.get(page)
    assert audit.status_code == 200 and ">Passed<" in audit.text
    thumb = await imaging_web_app.get(page.replace("/app/imaging/", "/app/verifications/")
                                      + "/thumbnails/1")  # fmt: skip
    assert thumb.status_code == 200
