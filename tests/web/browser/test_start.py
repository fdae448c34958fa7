"""In Chromium: Verity opened from the EHR (EHR launch and standalone launch with the EHR's
patient picker), the start page with the patient banner and the orders, signing out."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.web.browser.conftest import launch

ORDER_NDC = "00093-0311-01"


def test_ehr_launch_opens_the_start_page_with_banner_and_orders(
    flow: Any, live: Any, auth_server: Any, ehr: Any
) -> None:
    patient = ehr.patient()
    ehr.order(patient, ORDER_NDC)
    ehr.order(patient, ORDER_NDC, status="stopped")
    f = flow("start")
    launch(f.page, auth_server, live, patient, "pharmacist")
    page = f.page
    expect(page.get_by_role("heading", level=1)).to_have_text("Checks for this patient")
    expect(page.get_by_role("region", name="Patient")).to_contain_text("Test")
    orders = page.locator("#orders-h + ul.cards > li")
    expect(orders).to_have_count(2)
    expect(orders.first).to_contain_text("Active")
    expect(orders.nth(1)).to_contain_text("Not active: stopped")
    # The person, from the id_token: its `name` needs the `profile` scope, which Verity does
    # not ask for, so the fhirUser shows (reported); either way it is the signed-in person.
    expect(page.locator(".who .user")).to_have_text(re.compile("Pat Pharmacist"))
    assert page.title() == "Verity — Verity"
    pid = patient.split("/")[1]
    for link in page.locator("a").evaluate_all("as => as.map(a => a.href)"):
        assert pid not in link  # opaque handles, never FHIR ids, in URLs
    assert pid not in page.url
    f.look("home")


def test_standalone_launch_lets_the_person_pick_the_patient_at_the_ehr(
    flow: Any, live: Any, ehr: Any
) -> None:
    patient = ehr.patient()
    ehr.order(patient, ORDER_NDC)
    page = flow("standalone").page
    page.goto(f"{live.url}/app/launch")
    page.get_by_label("User id").fill("pharmacist")
    page.get_by_label("Patient id").fill(patient.split("/")[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/app/")
    expect(page.get_by_role("heading", name="Medication orders")).to_be_visible()
    expect(page.locator("#orders-h + ul.cards > li")).to_have_count(1)


def test_sign_out_ends_the_session_in_the_browser(
    flow: Any, live: Any, auth_server: Any, ehr: Any, watch: Any
) -> None:
    watch.expected_statuses = True  # the page after signing out is the 401 page
    patient = ehr.patient()
    f = flow("signout")
    launch(f.page, auth_server, live, patient, "pharmacist")
    page = f.page
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Signed out"))
    f.look("signed-out", mirror=False)
    assert not [c for c in page.context.cookies() if c["name"] == "verity_session"]
    page.goto(f"{live.url}/app/")
    expect(page.locator("code")).to_have_text("VERITY-4601")
    f.look("session-ended", mirror=False)
