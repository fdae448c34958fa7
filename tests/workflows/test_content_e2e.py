"""A study whose header and order agree but whose pixels are of another body part, end to end:
STOWed into Orthanc, its resources on the FHIR server, checked by the app's worker through the
job path (WADO-RS metadata gives the geometry, the pixels the body), CONTENT_MISMATCH reported
and written back as a DetectedIssue."""

from __future__ import annotations

from typing import Any

import httpx

from tests.workflows.test_imaging_e2e import (  # noqa: F401 - the fixtures, reused
    STUDIES,
    Ehr,
    ehr,
    imaging_app,
    pacs,
    submit,
    wait_for,
    wait_until,
)


async def test_only_the_pixels_are_wrong_and_the_job_finds_a_content_mismatch(
    imaging_app: httpx.AsyncClient,  # noqa: F811
    ehr: Ehr,  # noqa: F811
    pacs: Any,  # noqa: F811
) -> None:
    case = "dev-030"  # header and order: CT abdomen; the pixels: a head CT slice
    pacs.stow(sorted((STUDIES / case / "dicom").glob("*.dcm")))
    study_ref = ehr.seed(case, address=pacs.base_url)
    accepted = await submit(imaging_app, study_ref)
    assert accepted.status_code == 202, accepted.text
    job = await wait_for(imaging_app, accepted.headers["Location"], {"done", "failed"})
    assert job["state"] == "done", job
    assert job["findings"] == ["CONTENT_MISMATCH"]
    content = next(c for c in job["result"]["checks"] if c["code"] == "CONTENT_MISMATCH")
    assert content["outcome"] == "failed"
    physical = content["evidence"]["images"][0]["plausibility"]
    assert physical["verdict"] == "IMPLAUSIBLE"
    assert 140 < physical["measured"]["body_mm"] < 200  # a head, from the PACS's own geometry
    issues = await wait_until(
        imaging_app, lambda: ehr.search("DetectedIssue", implicated=study_ref)
    )
    assert len(issues) == 1
