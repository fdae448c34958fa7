"""Pill dispense verification end to end: real tokens, real FHIR server, real photos."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fhir.resources.R4B.detectedissue import DetectedIssue
from fhir.resources.R4B.provenance import Provenance

from service.config import WritebackSettings
from service.main import create_app
from service.writeback.validate import validate
from tests.conftest import api_settings
from tests.workflows.conftest import (
    NOT_IN_LIBRARY_NDC,
    PHOTO_A,
    PHOTO_B,
    PRODUCT_A,
    PRODUCT_B,
    blank,
    new_key,
    photo,
    two_pills,
    verify,
)  # fmt: skip

pytestmark = pytest.mark.slow
NDC_A = "00093-0311-01"
ISSUE_SYSTEM = WritebackSettings().identifier_system  # the default, under the canonical base


async def delivered(ehr, verification_id: str, timeout: float = 30) -> list[dict]:
    """Wait for the relay to write the DetectedIssue of this verification; return all copies."""
    query = f"DetectedIssue?identifier={ISSUE_SYSTEM}|{verification_id}"
    for _ in range(int(timeout * 5)):
        found = ehr.search(query)
        if found:
            return found
        await asyncio.sleep(0.2)
    return []


async def test_right_pill_is_a_match_and_writes_nothing(pill_app, ehr):
    patient = ehr.patient()
    order = ehr.order(patient, NDC_A)
    resp = await verify(pill_app, order, [photo(PRODUCT_A, PHOTO_A)], patient=patient)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["verdict"] == "MATCH", body["pills"]
    assert body["fhir"]["status"] == "not_written"
    assert [e["id"] for e in body["expected"]] == [PRODUCT_A]
    assert body["pills"][0]["candidates"][0]["product"]["id"] == PRODUCT_A
    await asyncio.sleep(1)
    assert ehr.search(f"DetectedIssue?patient={patient}") == []
    # ...but it is in Verity's own audit trail.
    audit = await pill_app.get(f"/v1/medication-verifications/{body['id']}")
    assert audit.status_code == 200 and audit.json()["verdict"] == "MATCH"
    listed = (
        await pill_app.get("/v1/medication-verifications", params={"patient": patient})
    ).json()
    assert [i["id"] for i in listed["items"]] == [body["id"]]


async def test_wrong_pill_writes_one_detected_issue_even_when_retried(pill_app, ehr):
    patient = ehr.patient()
    order = ehr.order(patient, NDC_A)
    key = new_key()
    first = await verify(pill_app, order, [photo(PRODUCT_B, PHOTO_B)], key=key)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["verdict"] == "MISMATCH", body["pills"]
    assert body["fhir"]["status"] == "queued"
    retry = await verify(pill_app, order, [photo(PRODUCT_B, PHOTO_B)], key=key)
    assert retry.status_code == 200 and retry.json()["id"] == body["id"]
    reused = await verify(pill_app, order, [photo(PRODUCT_A, PHOTO_A)], key=key)
    assert reused.status_code == 409 and reused.json()["code"] == "VERITY-4090"
    issues = await delivered(ehr, body["id"])
    await asyncio.sleep(1)  # give a duplicate the chance to appear
    issues = ehr.search(f"DetectedIssue?patient={patient}")
    assert len(issues) == 1
    issue = issues[0]
    DetectedIssue.model_validate(issue)
    assert validate(issue) == []
    assert issue["severity"] == "high"
    assert {"code": "AIAST"}.items() <= issue["meta"]["security"][0].items()
    assert any(i["reference"].endswith(order.split("/")[1]) for i in issue["implicated"])
    provs = ehr.search(f"Provenance?target=DetectedIssue/{issue['id']}")
    assert len(provs) == 1
    Provenance.model_validate(provs[0])
    assert validate(provs[0]) == []
    assert ehr.search(f"Provenance?patient={patient}") == provs  # patient-scoped discovery
    # the model cards of the models that made it, from the cards Verity ships, once each
    derived = [e["what"]["reference"] for e in provs[0]["entity"] if e["role"] == "derivation"]
    cards = [ehr.search(f"DocumentReference?_id={ref.split('/')[1]}")[0] for ref in derived]
    titles = [c["content"][0]["attachment"]["title"] for c in cards]
    assert any(t.startswith("Model card: efficientnet-lite0 efficientnet-lite0@") for t in titles)
    for card in cards:
        assert validate(card) == []
        text = base64.b64decode(card["content"][0]["attachment"]["data"]).decode()
        assert text == card["description"] and text.startswith("# Model card")


async def test_inactive_order_is_a_finding(pill_app, ehr):
    patient = ehr.patient()
    order = ehr.order(patient, NDC_A, status="stopped")
    body = (await verify(pill_app, order, [photo(PRODUCT_A, PHOTO_A)])).json()
    assert "ORDER_INACTIVE" in body["findings"]
    assert body["fhir"]["status"] == "queued"
    assert len(await delivered(ehr, body["id"])) == 1


async def test_patient_not_the_orders_subject_is_a_finding(pill_app, ehr):
    order = ehr.order(ehr.patient(), NDC_A)
    other = ehr.patient()
    body = (await verify(pill_app, order, [photo(PRODUCT_A, PHOTO_A)], patient=other)).json()
    assert "PATIENT_MISMATCH" in body.get("findings", []), body


async def test_unknown_order_is_a_clear_404(pill_app):
    resp = await verify(pill_app, "MedicationRequest/does-not-exist", [photo(PRODUCT_A, PHOTO_A)])
    assert resp.status_code == 404
    assert resp.json()["code"] == "VERITY-4300" and resp.json()["retryable"] is False


async def test_malformed_order_reference(pill_app):
    resp = await verify(pill_app, "Patient/123", [photo(PRODUCT_A, PHOTO_A)])
    assert resp.status_code == 422 and resp.json()["code"] == "VERITY-4302"


async def test_drug_without_reference_is_not_in_library(pill_app, ehr):
    order = ehr.order(ehr.patient(), NOT_IN_LIBRARY_NDC)
    body = (await verify(pill_app, order, [photo(PRODUCT_A, PHOTO_A)])).json()
    assert body["verdict"] == "NOT_IN_LIBRARY"
    assert [e["id"] for e in body["expected"]] == ["ndc_00172-3650-70"]  # known, no reference
    assert len(await delivered(ehr, body["id"])) == 1


async def test_photo_without_pill(pill_app, ehr):
    order = ehr.order(ehr.patient(), NDC_A)
    body = (await verify(pill_app, order, [blank()])).json()
    assert body["verdict"] == "NO_PILL_FOUND" and body["pills"] == []


async def test_two_pills_for_a_one_tablet_dose(pill_app, ehr):
    order = ehr.order(ehr.patient(), NDC_A, dose=1)
    body = (await verify(pill_app, order, [two_pills()])).json()
    assert len(body["pills"]) == 2, body
    assert "COUNT_MISMATCH" in body["findings"] and body["count_expected"] == 1
    left, right = sorted(p["bbox"] for p in body["pills"])  # x, y, width, height in the photo
    assert left[2] > 0 and left[3] > 0 and left[0] + left[2] <= right[0] < 800


async def test_bad_photo_is_refused_and_nothing_recorded(pill_app, ehr):
    patient = ehr.patient()
    order = ehr.order(patient, NDC_A)
    resp = await verify(pill_app, order, [b"not an image at all" * 20])
    assert resp.status_code == 415 and resp.json()["code"] == "VERITY-4101"
    listed = (
        await pill_app.get("/v1/medication-verifications", params={"patient": patient})
    ).json()
    assert listed["items"] == []


async def test_needs_the_verification_scope(pill_app, auth_server):
    token = auth_server.mint_token(
        "api-caller", scope="system/*.read", resource=auth_server.api_audience
    )
    resp = await pill_app.post(
        "/v1/medication-verifications",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        files=[("photo", ("p.jpg", b"x"))],
        data={"medication_request": "1"},
    )
    assert resp.status_code == 403 and resp.json()["code"] == "VERITY-4030"


async def test_fhir_down_at_request_time_fails_clearly(pill_app, ehr, fhir_server):
    patient = ehr.patient()
    order = ehr.order(patient, NDC_A)
    fhir_server.stop()
    try:
        down = await verify(pill_app, order, [photo(PRODUCT_B, PHOTO_B)], patient=patient)
    finally:
        fhir_server.start()
    assert down.status_code == 502, down.text
    assert down.json()["code"] == "VERITY-5020" and down.json()["retryable"] is True
    listed = await pill_app.get("/v1/medication-verifications", params={"patient": patient})
    assert listed.json()["items"] == []


async def test_write_back_waits_out_an_outage(
    e2e_db, auth_server, fhir_server, ehr, api_token, tmp_path
):
    """Order read, verification accepted, FHIR server down for the write: delivered once later."""
    from service.config import OutboxSettings
    from service.writeback.relay import deliver_batch

    settings = api_settings(
        e2e_db, auth_server, tmp_path,
        fhir=fhir_server.settings_for("verity-rs384", max_retries=0, timeout_s=5, connect_timeout_s=1),
        outbox=OutboxSettings(relay_enabled=False, backoff_base_s=0.1, backoff_max_s=0.2),
    )  # fmt: skip
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=120), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://verity.test", timeout=120,
        headers={"Authorization": f"Bearer {api_token}"},
    ) as client:  # fmt: skip
        patient = ehr.patient()
        order = ehr.order(patient, NDC_A)
        resp = await verify(client, order, [photo(PRODUCT_B, PHOTO_B)])
        assert resp.status_code == 201 and resp.json()["fhir"]["status"] == "queued"
        vid = resp.json()["id"]
        fhir_server.stop()
        try:
            await deliver_batch(app.state.db.pool, app.state.fhir, settings.outbox)
        finally:
            fhir_server.start()
        async with app.state.db.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT status, attempts FROM outbox WHERE verification_id = %s", (vid,)
                )
            ).fetchone()
        assert row == ("pending", 1)
        for _ in range(50):
            await asyncio.sleep(0.1)
            await deliver_batch(app.state.db.pool, app.state.fhir, settings.outbox)
            if ehr.search(f"DetectedIssue?identifier={ISSUE_SYSTEM}|{vid}"):
                break
        await deliver_batch(app.state.db.pool, app.state.fhir, settings.outbox)
        assert len(ehr.search(f"DetectedIssue?identifier={ISSUE_SYSTEM}|{vid}")) == 1


async def test_concurrent_retries_with_one_key_record_one_verification(pill_app, ehr):
    patient = ehr.patient()
    order = ehr.order(patient, NDC_A)
    key = new_key()
    a, b = await asyncio.gather(
        verify(pill_app, order, [photo(PRODUCT_B, PHOTO_B)], key=key),
        verify(pill_app, order, [photo(PRODUCT_B, PHOTO_B)], key=key),
    )
    assert sorted([a.status_code, b.status_code]) == [200, 201], (a.text, b.text)
    assert a.json()["id"] == b.json()["id"]
    listed = await pill_app.get("/v1/medication-verifications", params={"patient": patient})
    assert len(listed.json()["items"]) == 1
    await delivered(ehr, a.json()["id"])
    await asyncio.sleep(0.5)
    assert len(ehr.search(f"DetectedIssue?patient={patient}")) == 1


async def test_order_with_a_referenced_medication_finds_products_by_ingredient(pill_app, ehr):
    """No codes on the order: the Medication on the server names ingredient and strength."""
    med = ehr.create({
        "resourceType": "Medication",
        "code": {"text": "Loperamide hydrochloride capsule"},
        "ingredient": [{"itemCodeableConcept": {"text": "LOPERAMIDE"},
                        "strength": {"numerator": {"value": 2, "unit": "mg"},
                                     "denominator": {"value": 1, "unit": "capsule"}}}],
    })  # fmt: skip
    patient = ehr.patient()
    order = ehr.create({
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "subject": {"reference": patient},
        "medicationReference": {"reference": f"Medication/{med['id']}"},
    })  # fmt: skip
    body = (
        await verify(pill_app, f"MedicationRequest/{order['id']}", [photo(PRODUCT_B, PHOTO_B)])
    ).json()
    assert [e["id"] for e in body["expected"]] == [PRODUCT_A]
    assert body["verdict"] != "MATCH"
