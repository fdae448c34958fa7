"""In Chromium, the auditor: a pharmacist's mismatch and decision, then the audit view opened
from the EHR: search, one verification with the exact FHIR writes and their delivery, CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from playwright.sync_api import expect

from tests.web.browser.conftest import launch, photo
from tests.web.browser.test_pills import NDC_A, check_photo, named_patient, order_named
from tests.workflows.conftest import PHOTO_B, PRODUCT_B


def test_auditor_searches_reads_the_writes_and_exports_csv(
    flow: Any, live: Any, auth_server: Any, ehr: Any, tmp_path: Any
) -> None:
    patient = named_patient(ehr)
    order_named(ehr, patient, NDC_A, "Loperamide 2 mg oral capsule")
    f = flow("audit")
    launch(f.page, auth_server, live, patient, "pharmacist")
    assert check_photo(f.page, photo(PRODUCT_B, PHOTO_B)) == "MISMATCH"
    verification_id = f.page.url.rsplit("/", 1)[1].split("#")[0]
    f.page.get_by_label("Sent back to pharmacy").check()
    f.page.get_by_role("button", name="Record decision").click()
    expect(f.page.locator("#decision")).to_contain_text("Sent back to pharmacy")
    # The auditor opens Verity from the EHR (a launch needs a chart: any patient's).
    f.page.context.clear_cookies()
    launch(f.page, auth_server, live, ehr.patient(), "auditor")
    f.page.get_by_role("link", name="Audit").first.click()
    expect(f.page.get_by_role("heading", level=1)).to_have_text("Audit")
    f.page.get_by_label("Patient reference").fill(patient)
    f.page.get_by_role("button", name="Search").click()
    rows = f.page.locator("#audit-results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("MISMATCH")
    expect(rows.first).to_contain_text("Practitioner/pharm-1")
    f.look("search")
    rows.first.get_by_role("link").click()
    expect(f.page.locator("#audit-verdict")).to_have_text("MISMATCH")
    writes = f.page.get_by_test_id("audit-write")
    expect(writes).to_have_count(2)  # the verification's Bundle and the decision's
    expect(f.page.locator("[data-purpose=verification] [data-testid=audit-write-status]")
           ).to_have_text("delivered", timeout=5_000)  # fmt: skip
    expect(f.page.get_by_test_id("audit-decision-action")).to_contain_text("returned")
    f.page.get_by_text("The exact Bundle (JSON)").first.click()
    expect(f.page.locator("#audit-writes pre.json").first).to_contain_text('"DetectedIssue"')
    f.look("detail")
    f.page.get_by_role("link", name="Back to the search").click()
    with f.page.expect_download() as download:
        f.page.get_by_role("button", name="Export CSV").click()
    saved = tmp_path / "audit.csv"
    download.value.save_as(saved)
    table = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [r["id"] for r in table] == [verification_id]
    assert table[0]["verdict"] == "MISMATCH" and table[0]["patient"] == patient
