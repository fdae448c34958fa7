"""Closing the loop, against the real FHIR server and the relay: a person's decision on a
flagged pill verification becomes DetectedIssue.mitigation and a Provenance naming them."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import DecisionExists, DecisionNotNeeded, RequestInvalid
from service.workflows.decisions import Decision, decision_for, record_decision
from service.workflows.record import Caller
from tests.workflows.conftest import PHOTO_A, PHOTO_B, PRODUCT_A, PRODUCT_B, photo, verify
from tests.workflows.test_pill_verification import ISSUE_SYSTEM, delivered

pytestmark = pytest.mark.slow
NDC_A = "00093-0311-01"
PHARMACIST = "Practitioner/pharm-1"


def decision(action: str, reason: str | None = None, who: str = PHARMACIST) -> Decision:
    return Decision(action, reason, who, "Pat Pharmacist", Caller(who, "verity-web", ()))


async def until_delivered(app, verification_id: str, timeout: float = 30):
    for _ in range(int(timeout * 5)):
        view = await decision_for(app.state.db.pool.connection, verification_id)
        if view is not None and view.delivery == "delivered":
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"decision not delivered: {view}")


async def test_a_decision_on_a_mismatch_reaches_the_ehr_once(pill_app, ehr):
    app = pill_app.app
    patient = ehr.patient()
    order = ehr.order(patient, NDC_A)
    body = (await verify(pill_app, order, [photo(PRODUCT_B, PHOTO_B)], patient=patient)).json()
    assert body["verdict"] == "MISMATCH"
    vid = body["id"]
    assert len(await delivered(ehr, vid)) == 1  # the AI's own write first
    view, created = await record_decision(
        app.state.db.pool.connection, app.state.settings, vid, decision("removed")
    )
    assert created and view.code == "8" and view.display == "Wrong product removed"
    await until_delivered(app, vid)
    [issue] = ehr.search(f"DetectedIssue?identifier={ISSUE_SYSTEM}|{vid}")
    [m] = issue["mitigation"]
    assert m["action"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    assert m["action"]["coding"][0]["code"] == "8"
    assert m["action"]["text"] == "Wrong product removed"
    assert m["author"]["reference"] == PHARMACIST
    found = ehr.search(f"Provenance?agent={PHARMACIST}&target=DetectedIssue/{issue['id']}")
    assert len(found) == 1
    assert found[0]["activity"]["coding"][0]["code"] == "UPDATE"
    # The same decision again changes nothing; another one is refused: the first stands.
    again, created = await record_decision(
        app.state.db.pool.connection, app.state.settings, vid, decision("removed")
    )
    assert not created and again.id == view.id
    with pytest.raises(DecisionExists):
        await record_decision(
            app.state.db.pool.connection, app.state.settings, vid, decision("confirmed")
        )
    await asyncio.sleep(1)
    assert len(ehr.search(f"DetectedIssue?identifier={ISSUE_SYSTEM}|{vid}")) == 1
    assert len(ehr.search(f"Provenance?agent={PHARMACIST}&target=DetectedIssue/{issue['id']}")) == 1


async def test_a_clean_match_needs_no_decision(pill_app, ehr):
    app = pill_app.app
    patient = ehr.patient()
    order = ehr.order(patient, NDC_A)
    body = (await verify(pill_app, order, [photo(PRODUCT_A, PHOTO_A)], patient=patient)).json()
    assert body["verdict"] == "MATCH"
    with pytest.raises(DecisionNotNeeded):
        await record_decision(
            app.state.db.pool.connection, app.state.settings, body["id"], decision("confirmed")
        )


async def test_other_needs_a_reason_and_unknown_actions_are_refused(pill_app):
    app = pill_app.app
    for bad in (decision("other"), decision("other", "   "), decision("shrug")):
        with pytest.raises(RequestInvalid):
            await record_decision(
                app.state.db.pool.connection, app.state.settings, "0" * 32, bad
            )
