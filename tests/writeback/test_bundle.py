"""The one builder: any domain's resources -> one validated, idempotent transaction; a resource
that breaks its profile never reaches the outbox."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from service.config import WritebackSettings
from service.errors import InternalError
from service.fhir.orders import StaticOrderSource
from service.verify.common import ModelInfo
from service.workflows.pills.verify import PillRequest, verify_pill
from service.writeback import codes, pills
from service.writeback.bundle import Activity, Entry, entry_url, transaction
from service.writeback.datatypes import meta, narrative
from service.writeback.device import AiDevice
from service.writeback.validate import registry_for, validate
from tests.writeback.test_pills import ORG, make_verification

SETTINGS = WritebackSettings(organization="Organization/hosp-1")
BASE = "https://fhir.hospital.example/verity"
DEVICE = AiDevice((ModelInfo("study-checker", "2.0.0"),), "checks imaging studies")
WHEN = make_verification().created_at
DISCLAIMER = "AI-assisted check: a radiologist must confirm it."


def imaging_resources() -> tuple[Entry, Entry]:
    """What a second domain would pass: a report and one check, referencing each other and the
    AI Device by the fullUrls the builder gives them (draft imaging profiles)."""
    system = SETTINGS.identifier_system
    common: dict[str, Any] = {
        "text": narrative("Modality matches the order.", DISCLAIMER),
        "status": "preliminary",
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": WHEN.isoformat(),
        "issued": WHEN.isoformat(),
    }
    check = get_fhir_model_class("Observation")(
        **common,
        meta=meta(f"{codes.CANONICAL_BASE}/StructureDefinition/verity-imaging-check"),
        identifier=[{"system": system, "value": "run-1/modality"}],
        category=[
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "imaging",
                    }
                ]
            }
        ],
        code={"coding": [{"system": codes.FINDING_SYSTEM, "code": "MODALITY_MISMATCH"}]},
        device=DEVICE.reference(SETTINGS),
        derivedFrom=[{"reference": "ImagingStudy/is-1"}],
        valueCodeableConcept={"coding": [{"system": codes.CHECK_OUTCOME_SYSTEM, "code": "passed"}]},
    )
    report = get_fhir_model_class("DiagnosticReport")(
        **common,
        meta=meta(f"{codes.CANONICAL_BASE}/StructureDefinition/verity-imaging-report"),
        identifier=[{"system": system, "value": "run-1"}],
        category=[
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}
        ],
        code={
            "coding": [
                {"system": codes.IMAGING_REPORT_SYSTEM, "code": "imaging-study-verification"}
            ]
        },
        imagingStudy=[{"reference": "ImagingStudy/is-1"}],
        result=[{"reference": entry_url(system, "run-1/modality"), "type": "Observation"}],
        conclusion=f"All checks passed. {DISCLAIMER}",
        conclusionCode=[{"coding": [{"system": codes.FINDING_SYSTEM, "code": "NO_FINDING"}]}],
    )
    return Entry.of(report, system, "run-1", 0.97), Entry.of(check, system, "run-1/modality")


def activity() -> Activity:
    # The Provenance's source entity: the record checked (a MedicationRequest or an ImagingStudy);
    # everything else here is domain-free.
    order = {"reference": "MedicationRequest/mr-1", "type": "MedicationRequest"}
    return Activity(
        WHEN, [{"role": "source", "what": order}], "Run 1.", DISCLAIMER, "Patient/pat-1"
    )


def test_a_domain_passes_its_resources_and_gets_the_whole_transaction():
    report, check = imaging_resources()
    write = transaction(DEVICE, [report, check], activity(), SETTINGS)
    get_fhir_model_class("Bundle").model_validate(write.bundle)
    entries = write.bundle["entry"]
    assert [e["resource"]["resourceType"] for e in entries] == [
        "DocumentReference",
        "Device",
        "DiagnosticReport",
        "Observation",
        "Provenance",
    ]
    card, dev, rep, obs, prov = entries
    assert (
        card["request"]["ifNoneExist"] == f"identifier={BASE}/sid/model-card|study-checker%402.0.0"
    )
    assert card["resource"]["identifier"] == [
        {"system": f"{BASE}/sid/model-card", "value": "study-checker@2.0.0"}
    ]
    assert dev["fullUrl"] == DEVICE.full_url(SETTINGS)
    assert dev["resource"]["owner"]["reference"] == "Organization/hosp-1"
    assert "imaging studies" in dev["resource"]["text"]["div"]
    assert obs["resource"]["device"]["reference"] == dev["fullUrl"]
    assert rep["resource"]["result"][0]["reference"] == obs["fullUrl"]
    assert rep["request"]["ifNoneExist"] == f"identifier={BASE}/sid/verification|run-1"
    assert obs["request"]["ifNoneExist"] == f"identifier={BASE}/sid/verification|run-1/modality"
    assert prov["request"]["ifNoneExist"] == f"target={rep['fullUrl']}"
    provenance = prov["resource"]
    assert [(t["reference"], t["type"]) for t in provenance["target"]] == [
        (rep["fullUrl"], "DiagnosticReport"),
        (obs["fullUrl"], "Observation"),
        ("Patient/pat-1", "Patient"),
    ]
    assert provenance["entity"][0] == {
        "role": "derivation",
        "what": {
            "reference": card["fullUrl"],
            "type": "DocumentReference",
            "display": "model card of study-checker 2.0.0",
        },
    }
    assert provenance["meta"]["profile"] == [
        codes.PROFILE_PROVENANCE,
        codes.PROFILE_IG_AI_PROVENANCE,
    ]
    assert provenance["target"][0]["extension"][0]["valueDecimal"] == 0.97
    assert "extension" not in provenance["target"][1]
    assert provenance["agent"][0]["who"]["reference"] == dev["fullUrl"]
    assert provenance["agent"][0]["onBehalfOf"]["reference"] == "Organization/hosp-1"
    assert DISCLAIMER in provenance["text"]["div"]
    assert (write.resource_type, write.identifier_value) == ("DiagnosticReport", "run-1")


def test_an_entry_must_carry_the_identifier_it_is_created_under():
    report, _ = imaging_resources()
    with pytest.raises(ValueError, match="does not carry identifier"):
        Entry.of(report.resource, "urn:other", "run-1")


def test_a_resource_breaking_its_profile_is_refused_without_patient_data(caplog):
    issue = pills.detected_issue(make_verification(), ORG).model_dump(
        mode="json", exclude_none=True
    )
    issue["meta"]["security"] = []  # a bug that drops the AI-asserted label
    entry = Entry.of(issue, ORG.identifier_system, issue["identifier"][0]["value"])
    with caplog.at_level(logging.ERROR), pytest.raises(InternalError) as caught:
        transaction(pills.pill_device(make_verification()), [entry], activity(), ORG)
    assert "DetectedIssue.meta.security:aiast" in caught.value.detail
    assert caught.value.code == "VERITY-5000"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "DetectedIssue.meta.security:aiast" in logged
    for phi in ("Patient/pat-1", "lisinopril", "MedicationRequest/mr-1"):
        assert phi not in logged and phi not in caught.value.detail


def test_a_resource_claiming_no_known_profile_is_refused():
    report, _ = imaging_resources()
    report.resource["meta"]["profile"] = ["https://elsewhere.example/StructureDefinition/x"]
    with pytest.raises(
        InternalError, match="DiagnosticReport that breaks its profile at meta.profile"
    ):
        transaction(DEVICE, [report], activity(), SETTINGS)


@pytest.mark.slow
async def test_an_invalid_write_leaves_no_outbox_and_no_audit_row(api, monkeypatch):
    """The real workflow on the real database: a builder bug that breaks the profile fails the
    verification before its transaction, so neither row exists (not even half of it)."""
    from service.demo.renderer import DEMO_PILLS, phone_photo

    real = pills.meta

    def without_aiast(profile: str) -> dict[str, Any]:
        out = real(profile)
        out["security"] = []
        return out

    monkeypatch.setattr(pills, "meta", without_aiast)
    app = api.app  # type: ignore[attr-defined]
    order_id = str(uuid.uuid4())
    order = {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "medicationCodeableConcept": {  # an NDC no test enrols: NOT_IN_LIBRARY, always written
            "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "00172-3650-70"}]
        },
    }
    req = PillRequest(f"MedicationRequest/{order_id}", [phone_photo(DEMO_PILLS[0])])
    with pytest.raises(InternalError, match="DetectedIssue that breaks its profile"):
        await verify_pill(
            app.state.pills,
            app.state.settings,
            req,
            StaticOrderSource([order]),
            app.state.db.pool.connection,
            deliver=True,
        )
    async with app.state.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM verification WHERE order_ref = %s", (req.order_ref,)
        )
        assert (await cur.fetchone())[0] == 0
        cur = await conn.execute(
            "SELECT count(*) FROM outbox WHERE payload::text LIKE %s", (f"%{order_id}%",)
        )
        assert (await cur.fetchone())[0] == 0
    monkeypatch.undo()  # the same request with the real builder is recorded and queued
    _, recorded = await verify_pill(
        app.state.pills,
        app.state.settings,
        req,
        StaticOrderSource([order]),
        app.state.db.pool.connection,
        deliver=True,
    )
    assert recorded.created and recorded.result["fhir"]["status"] == "queued"
    async with app.state.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM outbox WHERE payload::text LIKE %s", (f"%{order_id}%",)
        )
        assert (await cur.fetchone())[0] == 1


def test_a_device_type_with_a_display_or_text_is_refused():
    """AI-Device fixes Device.type to exactly {system, code}: what the issue found Verity doing."""
    from service.writeback import device as device_module

    for extra in ({"display": "Artificial Intelligence"}, None):
        dev = DEVICE.resource(SETTINGS).model_dump(mode="json", exclude_none=True)
        if extra:
            dev["type"]["coding"][0].update(extra)
        else:
            dev["type"]["text"] = "Artificial Intelligence"
        errors = validate(dev, registry=registry_for(BASE))
        assert any(e.startswith("Device.type:") for e in errors), errors

    class Displayed(device_module.AiDevice):
        def resource(self, settings: WritebackSettings) -> Any:
            dev = super().resource(settings)
            dev.type.coding[0].display = "Artificial Intelligence"
            return dev

    report, _ = imaging_resources()
    with pytest.raises(InternalError, match="Device that breaks its profile at Device.type"):
        transaction(Displayed(DEVICE.models, DEVICE.purpose), [report], activity(), SETTINGS)


def test_the_ai_agent_role_must_be_exactly_the_igs_coding():
    report, check = imaging_resources()
    bundle = transaction(DEVICE, [report, check], activity(), SETTINGS).bundle
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
    prov = bundle["entry"][-1]["resource"]
    assert validate(prov, registry=registry_for(BASE), fullurl_types=types) == []
    prov["agent"][0]["role"][0]["coding"][0]["display"] = "Artificial Intelligence"
    errors = validate(prov, registry=registry_for(BASE), fullurl_types=types)
    assert "Provenance.agent:AIagent: 0 found, at least 1 required" in errors
    prov["agent"][0]["role"] = [{"coding": [codes.AI_DEVICE_TYPE]}]
    prov["entity"][0]["role"] = "source"  # the model card is what the AI derives from
    errors = validate(prov, registry=registry_for(BASE), fullurl_types=types)
    assert any(e.startswith("Provenance.entity:modelCard.role:") for e in errors), errors


def test_canonical_urls_follow_the_configured_base_and_identifier_systems_default_under_it():
    elsewhere = WritebackSettings(canonical_base="https://fhir.st-elsewhere.example/verity")
    assert (
        elsewhere.identifier_system == "https://fhir.st-elsewhere.example/verity/sid/verification"
    )
    assert elsewhere.device_identifier_system.endswith("/verity/sid/device")
    report, check = imaging_resources()
    bundle = transaction(DEVICE, [report, check], activity(), elsewhere).bundle
    text = json.dumps(bundle)
    for kind in ("StructureDefinition", "CodeSystem", "ValueSet"):  # the resources' identifiers
        assert f"{BASE}/{kind}/" not in text  # here are the test's own, under the default base
    dev = bundle["entry"][1]["resource"]
    assert dev["meta"]["profile"] == [
        "https://fhir.st-elsewhere.example/verity/StructureDefinition/verity-ai-device",
        codes.PROFILE_IG_AI_DEVICE,
    ]
    assert "https://fhir.st-elsewhere.example/verity/CodeSystem/verification-finding" in text
    assert "urn:verity:" not in json.dumps(
        transaction(DEVICE, [report], activity(), SETTINGS).bundle
    )


def test_the_ig_is_pinned():
    assert codes.AI_TRANSPARENCY_IG_VERSION == "1.0.0-current"
    assert codes.PROFILE_IG_AI_DEVICE.endswith("/StructureDefinition/AI-Device")
    assert codes.PROFILE_IG_AI_PROVENANCE.endswith("/StructureDefinition/AI-Provenance")
    assert codes.PROFILE_IG_AI_MODEL_CARD.endswith("/StructureDefinition/AI-ModelCard")
    for url in (codes.PROFILE_IG_AI_DEVICE, codes.PROFILE_IG_AI_PROVENANCE):
        assert url in registry_for(BASE).profiles
