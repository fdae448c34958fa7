"""In Chromium, the medication check as a pharmacist does it on a phone: open Verity from the
chart, pick the order, photograph the pills, read the verdict with the pictures side by side;
record a decision on a mismatch (written to the EHR as DetectedIssue.mitigation); confirm a
pill Verity could not recognise, and a library manager teaches the library with that photo."""

from __future__ import annotations

import csv
import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import SHARED_DATA
from tests.web.browser.conftest import fhir_admin, launch, photo
from tests.workflows.conftest import NOT_IN_LIBRARY_NDC, PHOTO_A, PHOTO_B, PRODUCT_A, PRODUCT_B

NDC_A = "00093-0311-01"  # PRODUCT_A: its PHOTO_A is a MATCH, PRODUCT_B's PHOTO_B a MISMATCH


def named_patient(ehr: Any) -> str:
    """A patient as an EHR holds one (invented), so the banner shows what a person sees."""
    body = {"resourceType": "Patient", "name": [{"given": ["Alex"], "family": "Example"}],
            "birthDate": "1961-04-12", "gender": "female"}  # fmt: skip
    return "Patient/" + ehr.create(body)["id"]


def order_named(ehr: Any, patient: str, ndc: str, text: str) -> str:
    body = {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "subject": {"reference": patient},
        "medicationCodeableConcept": {"text": text, "coding": [
            {"system": "http://hl7.org/fhir/sid/ndc", "code": ndc}]},
        "dosageInstruction": [{"text": "1 tablet by mouth",
                               "doseAndRate": [{"doseQuantity": {"value": 1}}]}],
    }  # fmt: skip
    return "MedicationRequest/" + ehr.create(body)["id"]


def check_photo(page: Page, path: Any) -> str:
    """On the start page: open the only order, choose the photo, check; the verdict shown."""
    page.locator("#orders-h + ul.cards > li a").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Medication check")
    page.get_by_label("Photos of the pills").set_input_files(path)
    expect(page.locator("#photo-preview img")).to_have_count(1)  # the preview (verity.js)
    page.get_by_role("button", name="Check the pills").click()
    verdict = page.get_by_test_id("verdict")
    expect(verdict).to_be_visible(timeout=90_000)
    return str(verdict.get_attribute("data-verdict"))


def pictures_loaded(page: Page) -> int:
    """Images of the result that the browser really decoded (not broken)."""
    return int(page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=pictures] img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length"
    ))  # fmt: skip


def test_right_pill_is_a_match_with_the_pictures_side_by_side(
    flow: Any, live: Any, auth_server: Any, ehr: Any
) -> None:
    patient = named_patient(ehr)
    order_named(ehr, patient, NDC_A, "Loperamide 2 mg oral capsule")
    f = flow("pill-match")
    launch(f.page, auth_server, live, patient, "pharmacist")
    f.look("start")
    f.page.locator("#orders-h + ul.cards > li a").first.click()
    f.look("order")
    f.page.go_back()
    assert check_photo(f.page, photo(PRODUCT_A, PHOTO_A)) == "MATCH"
    expect(f.page.get_by_test_id("pill-picture")).to_be_visible()
    expect(f.page.get_by_test_id("ordered-picture")).to_be_visible()
    assert pictures_loaded(f.page) >= 2
    f.page.get_by_text("Evidence for pill 1").click()  # the disclosure opens
    expect(f.page.locator("[data-testid=evidence] table")).to_be_visible()
    f.look("result")


def test_wrong_pill_mismatch_then_the_decision_reaches_the_ehr(
    flow: Any, live: Any, auth_server: Any, ehr: Any, fhir_server: Any
) -> None:
    patient = named_patient(ehr)
    order = order_named(ehr, patient, NDC_A, "Loperamide 2 mg oral capsule")
    f = flow("pill-mismatch")
    launch(f.page, auth_server, live, patient, "pharmacist")
    assert check_photo(f.page, photo(PRODUCT_B, PHOTO_B)) == "MISMATCH"
    f.look("result")
    f.page.get_by_label("Wrong product removed").check()
    f.page.get_by_role("button", name="Record decision").click()
    expect(f.page.locator("#decision")).to_contain_text("Wrong product removed")
    expect(f.page.locator("#decision")).to_contain_text("Pat Pharmacist")  # the id_token name
    f.look("decided")
    deadline = time.monotonic() + 60
    while True:  # the relay writes the mitigation through the outbox
        issues = fhir_admin(fhir_server, f"DetectedIssue?implicated={order}")
        if issues and issues[0].get("mitigation"):
            break
        assert time.monotonic() < deadline, issues
        time.sleep(0.5)
    mitigation = issues[0]["mitigation"][0]
    assert mitigation["author"]["reference"] == "Practitioner/pharm-1"
    provenance = fhir_admin(fhir_server, f"Provenance?target=DetectedIssue/{issues[0]['id']}")
    agents = [a["who"].get("reference") for p in provenance for a in p["agent"]]
    assert "Practitioner/pharm-1" in agents, provenance
    f.page.reload()
    expect(f.page.locator("#decision-delivery")).to_have_text("Written to the EHR")


def unenrolled() -> tuple[str, str]:
    """A product the dataset protocol never enrols (no reference, one photo)."""
    with (SHARED_DATA / "pills" / "labels.csv").open() as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if r["n_ref"] == "0" and r["n_photo"] == "1" and r["ndc"] != NOT_IN_LIBRARY_NDC
        ]
    return rows[0]["product_id"], rows[0]["ndc"]  # fmt: skip


def test_unrecognised_pill_confirmed_then_taught_to_the_library(
    flow: Any, live: Any, auth_server: Any, ehr: Any
) -> None:
    product_id, ndc = unenrolled()
    shot = photo(product_id, "photo_1.jpg")
    patient = named_patient(ehr)
    order_named(ehr, patient, ndc, "Ordered tablet")
    f = flow("pill-learn")
    launch(f.page, auth_server, live, patient, "pharmacist")
    first = check_photo(f.page, shot)
    assert first in ("NOT_IN_LIBRARY", "UNCERTAIN"), first
    result_url = f.page.url
    f.page.get_by_label("Confirmed correct").check()
    f.page.get_by_role("button", name="Record decision").click()
    expect(f.page.locator("#decision")).to_contain_text("Confirmed correct")
    expect(f.page.get_by_test_id("accept-reference")).to_have_count(0)  # not a pharmacist's
    f.look("confirmed")
    # The library manager, launched from the same chart, accepts the photo as a reference.
    manager = f.mirror.context.new_page()
    manager.context.clear_cookies()
    launch(manager, auth_server, live, patient, "libmgr")
    manager.goto(result_url)
    manager.get_by_test_id("accept-reference").first.click()
    expect(manager.get_by_test_id("accepted")).to_be_visible()
    manager.close()
    f.page.reload()
    expect(f.page.get_by_test_id("accepted")).to_be_visible()
    f.look("accepted")
    # A new check of the same photo: the library now knows the product.
    f.page.goto(f"{live.url}/app/")
    assert check_photo(f.page, shot) == "MATCH"


def test_a_decision_without_form_token_and_another_patients_launch_are_refused(
    flow: Any, live: Any, auth_server: Any, ehr: Any, watch: Any
) -> None:
    watch.expected_statuses = True  # the 4603 page
    patient = named_patient(ehr)
    order_named(ehr, patient, NDC_A, "Loperamide 2 mg oral capsule")
    f = flow("pill-refusals")
    launch(f.page, auth_server, live, patient, "pharmacist")
    assert check_photo(f.page, photo(PRODUCT_B, PHOTO_B)) == "MISMATCH"
    result_url = f.page.url
    vid = result_url.rsplit("/", 1)[1]
    forged = f.page.request.post(f"{result_url}/decision", form={"action": "removed"})
    assert forged.status == 403 and "VERITY-4602" in forged.text()
    assert live.sql("SELECT count(*) FROM verification_decision WHERE verification_id = %s",
                    vid) == [(0,)]  # fmt: skip
    # Another patient's launch, in another browser, cannot open this verification.
    other = f.mirror
    launch(other, auth_server, live, named_patient(ehr), "pharmacist")
    response = other.goto(result_url)
    assert response is not None and response.status == 403
    expect(other.locator("code")).to_have_text("VERITY-4603")
    expect(other.get_by_test_id("verdict")).to_have_count(0)
