"""Profiles: the conformance resources are valid, and every emitted resource conforms."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from service.config import WritebackSettings
from service.writeback import codes
from service.writeback.imaging_issues import CONCLUSIONS
from service.writeback.imaging_issues import ISSUES as IMAGING
from service.writeback.pill_issues import ISSUES
from service.writeback.pills import pill_write
from service.writeback.validate import PROFILES_DIR, ProfileNotFound, load_registry, validate
from tests.writeback.test_pills import IDS, ORG, SCENARIOS, make_verification

REGISTRY = load_registry(base=codes.CANONICAL_BASE)
PROFILES = {
    "DetectedIssue": [codes.PROFILE_DETECTED_ISSUE],
    "Provenance": [codes.PROFILE_PROVENANCE, codes.PROFILE_IG_AI_PROVENANCE],
    "Device": [codes.PROFILE_DEVICE, codes.PROFILE_IG_AI_DEVICE],
    "DocumentReference": [codes.PROFILE_MODEL_CARD, codes.PROFILE_IG_AI_MODEL_CARD],
}
AI_ASSERTED = ("DetectedIssue", "Provenance", "Device")  # the model card is written by people


def written(
    v=None, config=ORG, write_match=False
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    bundle = pill_write(v or make_verification(), config, write_match=write_match).bundle
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
    return {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}, types


def errors(resource: dict[str, Any], types: dict[str, str]) -> list[str]:
    return validate(resource, registry=REGISTRY, fullurl_types=types)


@pytest.mark.parametrize("path", sorted(PROFILES_DIR.glob("*.json")), ids=lambda p: p.name)
def test_conformance_resources_parse_as_fhir(path):
    doc = json.loads(path.read_text())
    get_fhir_model_class(doc["resourceType"]).model_validate(doc)
    assert path.name == f"{doc['resourceType']}-{doc['id']}.json"
    if doc["resourceType"] == "StructureDefinition":
        assert doc["fhirVersion"] == "4.0.1"
        assert doc["derivation"] == "constraint"
        assert doc["url"] == f"{codes.CANONICAL_BASE}/StructureDefinition/{doc['id']}"
        for el in doc["differential"]["element"]:
            # path = id without slice names, rooted at the profiled type
            assert el["path"] == ".".join(s.split(":")[0] for s in el["id"].split("."))
            assert el["path"].split(".")[0] == doc["type"]


def test_code_system_holds_exactly_the_codes_verity_writes():
    cs = json.loads((PROFILES_DIR / "CodeSystem-verification-finding.json").read_text())
    assert cs["url"] == codes.FINDING_SYSTEM
    assert {c["code"] for c in cs["concept"]} == set(ISSUES) | set(IMAGING) | set(CONCLUSIONS)
    issue_vs = REGISTRY.value_sets[codes.DETECTED_ISSUE_CODE_VALUESET]
    for kind in [*ISSUES.values(), *IMAGING.values()]:
        assert (codes.FINDING_SYSTEM, kind.code) in issue_vs
        if kind.act_code:
            assert (codes.V3_ACT_CODE, kind.act_code[0]) in issue_vs


@pytest.mark.parametrize(("name", "v", "code", "act", "severity"), SCENARIOS, ids=IDS)
@pytest.mark.parametrize("config", [ORG, WritebackSettings()], ids=["with-org", "no-org"])
def test_every_emitted_resource_conforms(name, v, code, act, severity, config):
    resources, types = written(v, config)
    for rtype, resource in resources.items():
        assert resource["meta"]["profile"] == PROFILES[rtype]
        assert errors(resource, types) == [], rtype


def test_match_when_configured_conforms():
    from service.verify.pills.results import Verdict

    resources, types = written(make_verification(Verdict.MATCH), write_match=True)
    assert all(errors(r, types) == [] for r in resources.values())


# --- negative cases: each must be caught ------------------------------------------------


def broken(rtype: str, mutate) -> list[str]:
    resources, types = written()
    resource = copy.deepcopy(resources[rtype])
    mutate(resource)
    return errors(resource, types)


def test_missing_aiast_fails():
    def other_label(r):
        r["meta"]["security"] = [{"system": codes.V3_OBSERVATION_VALUE, "code": "HTEST"}]

    for rtype in AI_ASSERTED:
        found = broken(rtype, other_label)
        assert f"{rtype}.meta.security:aiast: 0 found, at least 1 required" in found


def test_aiast_twice_fails():
    found = broken("DetectedIssue", lambda r: r["meta"]["security"].append(dict(codes.AIAST)))
    assert "DetectedIssue.meta.security:aiast: 2 found, at most 1 allowed" in found


def test_missing_identifier_fails():
    assert "DetectedIssue.identifier: 0 found, at least 1 required" in broken(
        "DetectedIssue", lambda r: r.pop("identifier")
    )
    assert "DetectedIssue.identifier.value: 0 found, at least 1 required" in broken(
        "DetectedIssue", lambda r: r["identifier"][0].pop("value")
    )
    assert "Device.identifier: 0 found, at least 1 required" in broken(
        "Device", lambda r: r.pop("identifier")
    )


def test_wrong_reference_types_fail():
    def author_is_practitioner(r):
        r["author"] = {"reference": "Practitioner/p1"}

    assert broken("DetectedIssue", author_is_practitioner) == [
        "DetectedIssue.author: points at Practitioner, allowed ['Device']"
    ]

    def implicates_patient(r):
        r["implicated"].append({"reference": "https://ehr.example/fhir/Patient/9"})

    assert any(
        "DetectedIssue.implicated: points at Patient" in e
        for e in broken("DetectedIssue", implicates_patient)
    )

    def lying_type(r):
        r["patient"] = {"reference": "Group/1", "type": "Patient"}

    assert any(
        "type Patient but reference is Group" in e for e in broken("DetectedIssue", lying_type)
    )

    def target_is_device(r):
        r["target"][0]["reference"] = "Device/d1"
        r["target"][0].pop("type")

    assert any(
        "Provenance.target: points at Device" in e for e in broken("Provenance", target_is_device)
    )


def test_missing_required_elements_fail():
    for rtype, key, elem in [
        ("DetectedIssue", "patient", "DetectedIssue.patient"),
        ("DetectedIssue", "author", "DetectedIssue.author"),
        ("DetectedIssue", "detail", "DetectedIssue.detail"),
        ("DetectedIssue", "identifiedDateTime", "DetectedIssue.identified[x]"),
        ("DetectedIssue", "implicated", "DetectedIssue.implicated"),
        ("Provenance", "occurredDateTime", "Provenance.occurred[x]"),
        ("Device", "version", "Device.version"),
        ("Device", "text", "Device.text"),
    ]:
        assert f"{elem}: 0 found, at least 1 required" in broken(
            rtype, lambda r, k=key: r.pop(k)
        ), elem


def test_identified_period_is_not_allowed():
    def period(r):
        r["identifiedPeriod"] = {"start": r.pop("identifiedDateTime")}

    found = broken("DetectedIssue", period)
    assert "DetectedIssue.identified[x]: 0 found, at least 1 required" in found
    assert "DetectedIssue.identified[x]: identifiedPeriod not allowed, only ['dateTime']" in found


def test_code_outside_the_required_value_set_fails():
    def bogus(r):
        r["code"] = {
            "coding": [
                {"system": codes.FINDING_SYSTEM, "code": "LOOKS_FINE"},
                {"system": codes.V3_ACT_CODE, "code": "DUPTHPY"},
            ]
        }

    assert broken("DetectedIssue", bogus) == [
        f"DetectedIssue.code: no code from required value set {codes.DETECTED_ISSUE_CODE_VALUESET}"
    ]


def test_provenance_without_the_ai_agent_or_model_card_fails():
    def no_ai_role(r):
        r["agent"][0].pop("role")

    assert "Provenance.agent:AIagent: 0 found, at least 1 required" in broken(
        "Provenance", no_ai_role
    )

    def role_with_text(r):
        r["agent"][0]["role"][0]["text"] = "Artificial Intelligence"

    assert "Provenance.agent:AIagent: 0 found, at least 1 required" in broken(
        "Provenance", role_with_text
    )

    def card_as_source(r):
        r["entity"][0]["role"] = "source"

    assert any(
        e.startswith("Provenance.entity:modelCard.role:")
        for e in broken("Provenance", card_as_source)
    )

    def no_aiast_reason(r):
        r["reason"] = [{"text": "because"}]

    assert "Provenance.reason:AIReason: 0 found, at least 1 required" in broken(
        "Provenance", no_aiast_reason
    )


def test_model_card_of_another_type_or_format_fails():
    def other_type(r):
        r["type"]["coding"][0]["display"] = "AI Model-Card"

    assert any(
        e.startswith("DocumentReference.type:") for e in broken("DocumentReference", other_type)
    )

    def not_markdown(r):
        r["content"][0]["attachment"]["contentType"] = "text/plain"
        r["category"] = []

    found = broken("DocumentReference", not_markdown)
    assert "DocumentReference.category: 0 found, at least 1 required" in found


def test_device_of_another_type_fails():
    def not_ai(r):
        r["type"] = {"coding": [{"system": "http://snomed.info/sct", "code": "706689003"}]}

    assert any(e.startswith("Device.type:") for e in broken("Device", not_ai))


def test_narrative_must_be_generated():
    def extensions(r):
        r["text"]["status"] = "extensions"

    assert any(
        e.startswith("DetectedIssue.text.status:") for e in broken("DetectedIssue", extensions)
    )


def test_validator_refuses_unknown_profiles_and_wrong_types():
    resources, types = written()
    with pytest.raises(ProfileNotFound):
        validate({"resourceType": "Observation"}, registry=REGISTRY)
    issue = resources["DetectedIssue"]
    assert validate(issue, codes.PROFILE_PROVENANCE, registry=REGISTRY, fullurl_types=types) == [
        "resourceType is DetectedIssue, profile is for Provenance"
    ]


def test_device_without_the_model_card_extension_fails():
    def no_card(r):
        r["extension"] = [
            e for e in r["extension"] if not e["url"].endswith("modelCardDescription")
        ]

    assert broken("Device", no_card) == [
        "Device.extension:modelCardDescription: 0 found, at least 1 required"
    ]

    def card_under_another_url(r):
        for e in r["extension"]:
            e["url"] = e["url"].replace("modelCardDescription", "modelCard")

    assert broken("Device", card_under_another_url) == [
        "Device.extension:modelCardDescription: 0 found, at least 1 required"
    ]
