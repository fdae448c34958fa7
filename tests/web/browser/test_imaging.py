"""In Chromium, the radiographer: a study the PACS (Orthanc) holds and the EHR lists, checked
from the chart with live progress, the result's table of checks and windowed thumbnails, and
the person's decision on a failed check."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import Route, expect

from tests.web.browser.conftest import launch
from tests.workflows.test_imaging_e2e import STUDIES
from tests.workflows.test_imaging_e2e import Ehr as StudyEhr

LATERALITY = "dev-036"  # left tibia ordered, right leg imaged: one failed check


def test_radiographer_checks_a_study_and_records_a_decision(
    flow: Any, live: Any, auth_server: Any, fhir_server: Any, orthanc: Any
) -> None:
    orthanc.stow(sorted((STUDIES / LATERALITY / "dicom").glob("*.dcm")))
    study_ref = StudyEhr(fhir_server).seed(LATERALITY, address=orthanc.base_url)
    study = httpx.get(f"{fhir_server.base_url}/{study_ref}",
                      headers=fhir_server.admin_headers(), timeout=10).json()  # fmt: skip
    f = flow("imaging")
    launch(f.page, auth_server, live, study["subject"]["reference"], "radiographer")
    f.page.locator("#studies-h + ul.cards > li a").first.click()
    f.look("study")
    f.page.get_by_role("button", name="Check this study").click()
    expect(f.page.get_by_role("heading", level=1)).to_have_text("Imaging check")
    # The page's progress polls wait while the progress page is looked at (else it may reload
    # into the result mid-look); each held poll is let through by this handler, exactly once,
    # before the route is removed (unroute would hand pending polls on by itself).
    held: list[Route] = []
    holding = [True]

    def hold(route: Route) -> None:
        if holding[0]:
            held.append(route)
        else:
            route.continue_()

    f.page.route("**/progress", hold)
    if f.page.get_by_test_id("progress-counts").count():  # still running: live progress
        expect(f.page.get_by_test_id("progress-text")).not_to_be_empty()
        f.look("progress", mirror=False)
    holding[0] = False
    for route in held:
        route.continue_()
    f.page.unroute("**/progress", hold)
    # No click: the page polls the job and reloads itself into the result.
    expect(f.page.get_by_role("heading", level=1)).to_have_text(
        "Imaging check result", timeout=120_000
    )
    expect(f.page.get_by_test_id("outcome")).to_have_text("Failed")
    expect(f.page.locator("#checks tbody tr").first).to_be_visible()
    assert f.page.locator("#checks tr.check-failed").count() >= 1
    expect(f.page.get_by_test_id("thumbnails").locator("img").first).to_be_visible()
    decoded = f.page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=thumbnails] img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert decoded >= 1
    f.look("result")
    f.page.get_by_label("Sent back for correction").check()
    f.page.get_by_role("button", name="Record decision").click()
    expect(f.page.locator("#decision")).to_contain_text("Rae Radiographer")  # the id_token name
    f.look("decided")
