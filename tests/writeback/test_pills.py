"""Pill write-back: every verdict and finding becomes valid, idempotent, AI-labelled R4."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from service.config import ConfigError, WritebackSettings, load_settings
from service.verify.pills.results import (
    Candidate,
    Finding,
    ModelInfo,
    PillResult,
    PillVerification,
    ProductRef,
    Verdict,
)
from service.writeback import codes, pill_issues
from service.writeback.datatypes import WritebackInputError, reference_type, sha256_uri
from service.writeback.device import AiDevice
from service.writeback.pill_issues import NDC_SYSTEM, RXNORM_SYSTEM
from service.writeback.pills import detected_issue, pill_device, pill_write

LISINOPRIL = ProductRef("lib-lis-10", "Lisinopril 10 mg tablet", ("00093-7339-01",), "314077")
METFORMIN = ProductRef("lib-met-500", "Metformin 500 mg tablet", ("00093-1048-01",), "861007")
MODELS = [ModelInfo("efficientnet-lite0", "1.0.0"), ModelInfo("pp-ocrv4-rec", "1.4.4")]
WHEN = datetime(2026, 11, 22, 3, 15, 0, tzinfo=UTC)
ORG = WritebackSettings(organization="Organization/hosp-1", organization_display="St Elsewhere")
BASE = "https://fhir.hospital.example/verity"  # the documented default canonical base
SID_VERIFICATION = f"{BASE}/sid/verification"


def pill(
    verdict: Verdict,
    *,
    expected: float | None,
    top: ProductRef | None = None,
    score: float = 0.9,
    index: int = 0,
) -> PillResult:
    cands = (Candidate(top, score, "MATCH", {"imprint": "ok"}),) if top else ()
    return PillResult(index, verdict, (10, 10, 40, 40), 0, cands, expected)


def make_verification(
    verdict: Verdict = Verdict.MISMATCH, findings: tuple[Finding, ...] = (), **over: Any
) -> PillVerification:
    """A realistic verification for each verdict, as the decision step would produce it."""
    pills = {
        Verdict.MATCH: [pill(Verdict.MATCH, expected=0.94, top=LISINOPRIL, score=0.94)],
        Verdict.MISMATCH: [pill(Verdict.MISMATCH, expected=0.12, top=METFORMIN, score=0.91)],
        Verdict.UNCERTAIN: [pill(Verdict.UNCERTAIN, expected=0.77, top=LISINOPRIL, score=0.77)],
        Verdict.NOT_IN_LIBRARY: [
            pill(Verdict.NOT_IN_LIBRARY, expected=None, top=METFORMIN, score=0.4)
        ],
        Verdict.NO_PILL_FOUND: [],
    }[verdict]
    base = PillVerification(
        id="0b6f3c1e-5d2a-4e8b-9f10-2c3d4e5f6a7b",
        created_at=WHEN,
        order_ref="MedicationRequest/mr-1",
        patient_ref="Patient/pat-1",
        dispense_ref="MedicationDispense/md-1",
        order_status="active",
        medication_text="lisinopril 10 MG Oral Tablet",
        expected=[] if verdict is Verdict.NOT_IN_LIBRARY else [LISINOPRIL],
        verdict=verdict,
        pills=pills,
        findings=list(findings),
        count_expected=1,
        photo_sha256=[hashlib.sha256(b"photo-1").hexdigest()],
        models=list(MODELS),
        caller="ehr-client",
    )
    return replace(base, **over)


# (name, verification, expected primary Verity code, v3 ActCode or None, severity)
SCENARIOS = [
    ("mismatch", make_verification(Verdict.MISMATCH), "MISMATCH", "NOTEQUIV", "high"),
    ("uncertain", make_verification(Verdict.UNCERTAIN), "UNCERTAIN", None, "moderate"),
    (
        "not-in-library",
        make_verification(Verdict.NOT_IN_LIBRARY),
        "NOT_IN_LIBRARY",
        None,
        "moderate",
    ),
    (
        "no-pill",
        make_verification(Verdict.NO_PILL_FOUND, photo_sha256=[]),
        "NO_PILL_FOUND",
        None,
        "moderate",
    ),
    (
        "inactive-order",
        make_verification(Verdict.MATCH, (Finding.ORDER_INACTIVE,), order_status="stopped"),
        "ORDER_INACTIVE",
        "NOTACTN",
        "high",
    ),
    (
        "patient-mismatch",
        make_verification(Verdict.MATCH, (Finding.PATIENT_MISMATCH,)),
        "PATIENT_MISMATCH",
        "FULFIL",
        "high",
    ),
    (
        "count-mismatch",
        make_verification(
            Verdict.MATCH,
            (Finding.COUNT_MISMATCH,),
            pills=[
                pill(Verdict.MATCH, expected=0.93, top=LISINOPRIL),
                pill(Verdict.MATCH, expected=0.9, top=LISINOPRIL, index=1),
            ],
        ),
        "COUNT_MISMATCH",
        "FULFIL",
        "high",
    ),
    (
        "mismatch+count",
        make_verification(Verdict.MISMATCH, (Finding.COUNT_MISMATCH,), count_expected=2),
        "MISMATCH",
        "NOTEQUIV",
        "high",
    ),
    (
        "uncertain-no-dispense-two-photos",
        make_verification(
            Verdict.UNCERTAIN,
            dispense_ref=None,
            photo_sha256=[hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()],
        ),
        "UNCERTAIN",
        None,
        "moderate",
    ),
]
IDS = [s[0] for s in SCENARIOS]

# Element names of FHIR R4 4.0.1 (hl7.org/fhir/R4) for what Verity emits: guards against
# anything R4B/R5-only slipping onto the wire.
DOMAIN_RESOURCE = {
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
}
R4_ELEMENTS = {
    "DetectedIssue": DOMAIN_RESOURCE
    | {
        "identifier",
        "status",
        "code",
        "severity",
        "patient",
        "identifiedDateTime",
        "identifiedPeriod",
        "author",
        "implicated",
        "evidence",
        "detail",
        "reference",
        "mitigation",
    },
    "Provenance": DOMAIN_RESOURCE
    | {
        "target",
        "occurredPeriod",
        "occurredDateTime",
        "recorded",
        "policy",
        "location",
        "reason",
        "activity",
        "agent",
        "entity",
        "signature",
    },
    "Device": DOMAIN_RESOURCE
    | {
        "identifier",
        "definition",
        "udiCarrier",
        "status",
        "statusReason",
        "distinctIdentifier",
        "manufacturer",
        "manufactureDate",
        "expirationDate",
        "lotNumber",
        "serialNumber",
        "deviceName",
        "modelNumber",
        "partNumber",
        "type",
        "specialization",
        "version",
        "property",
        "patient",
        "owner",
        "contact",
        "location",
        "url",
        "note",
        "safety",
        "parent",
    },
}
R4_ELEMENTS["DocumentReference"] = DOMAIN_RESOURCE | {
    "masterIdentifier",
    "identifier",
    "status",
    "docStatus",
    "type",
    "category",
    "subject",
    "date",
    "author",
    "authenticator",
    "custodian",
    "relatesTo",
    "description",
    "securityLabel",
    "content",
    "context",
}
R4_BACKBONE = {
    ("Provenance", "agent"): {
        "id",
        "extension",
        "modifierExtension",
        "type",
        "role",
        "who",
        "onBehalfOf",
    },
    ("Provenance", "entity"): {"id", "extension", "modifierExtension", "role", "what", "agent"},
    ("DetectedIssue", "evidence"): {"id", "extension", "modifierExtension", "code", "detail"},
    ("Device", "deviceName"): {"id", "extension", "modifierExtension", "name", "type"},
    ("Device", "version"): {"id", "extension", "modifierExtension", "type", "component", "value"},
    ("DocumentReference", "content"): {"id", "extension", "modifierExtension", "attachment"},
}
R4_SINGLE = {
    ("DetectedIssue", "code"),
    ("Provenance", "activity"),
    ("Device", "type"),
    ("DetectedIssue", "patient"),
    ("DetectedIssue", "author"),
}


def resources_of(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}


def resources_entry(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


@pytest.mark.parametrize(("name", "v", "code", "act", "severity"), SCENARIOS, ids=IDS)
def test_every_finding_becomes_a_parseable_r4_transaction(name, v, code, act, severity):
    write = pill_write(v, ORG)
    assert write is not None
    bundle = write.bundle
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "transaction"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        *["DocumentReference"] * len(v.models),
        "Device",
        "DetectedIssue",
        "Provenance",
    ]
    for entry in bundle["entry"]:
        res = entry["resource"]
        get_fhir_model_class(res["resourceType"]).model_validate(res)
        assert set(res) <= R4_ELEMENTS[res["resourceType"]], res["resourceType"]
        for (rtype, elem), allowed in R4_BACKBONE.items():
            if rtype == res["resourceType"]:
                for item in res.get(elem, []):
                    assert set(item) <= allowed, (rtype, elem)
        for rtype, elem in R4_SINGLE:
            if rtype == res["resourceType"] and elem in res:
                assert isinstance(res[elem], dict), (rtype, elem)
        aiast = {
            "system": codes.V3_OBSERVATION_VALUE,
            "code": "AIAST",
            "display": "Artificial Intelligence asserted",
        }
        # The model card is what Verity's makers wrote, not an AI assertion.
        labels = res["meta"].get("security", [])
        assert (aiast in labels) == (res["resourceType"] != "DocumentReference")
        assert res["text"]["status"] == "generated"
        assert res["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        assert entry["fullUrl"].startswith("urn:uuid:")
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["url"] == res["resourceType"]

    issue = resources_of(bundle)["DetectedIssue"]
    assert issue["status"] == "preliminary"
    assert issue["severity"] == severity
    codings = {(c["system"], c["code"]) for c in issue["code"]["coding"]}
    assert (codes.FINDING_SYSTEM, code) in codings
    if act:
        assert (codes.V3_ACT_CODE, act) in codings
    else:
        assert not any(s == codes.V3_ACT_CODE for s, _ in codings)
    assert issue["identifier"] == [{"system": SID_VERIFICATION, "value": v.id}]
    assert issue["patient"]["reference"] == v.patient_ref
    assert issue["identifiedDateTime"] == "2026-11-22T03:15:00Z"
    implicated = [r["reference"] for r in issue["implicated"]]
    assert implicated == [v.order_ref] + ([v.dispense_ref] if v.dispense_ref else [])
    assert "pharmacist or nurse must confirm" in issue["detail"]
    assert "pharmacist or nurse must confirm" in issue["text"]["div"]
    assert write.identifier_system == SID_VERIFICATION
    assert write.identifier_value == v.id


@pytest.mark.parametrize(("name", "v", "code", "act", "severity"), SCENARIOS, ids=IDS)
def test_bundle_links_by_urn_uuid_and_creates_conditionally(name, v, code, act, severity):
    bundle = pill_write(v, ORG).bundle
    *cards, dev, issue, prov = bundle["entry"]
    assert [c["request"]["ifNoneExist"] for c in cards] == [
        f"identifier={BASE}/sid/model-card|{m.name}%40{m.version}" for m in v.models
    ]
    assert dev["request"]["ifNoneExist"] == (
        f"identifier={BASE}/sid/device|{pill_device(v).identifier(ORG)}"
    )
    assert issue["request"]["ifNoneExist"] == f"identifier={SID_VERIFICATION}|{v.id}"
    # No per-verification tag: the Provenance is created once per its first target.
    assert prov["request"]["ifNoneExist"] == f"target={issue['fullUrl']}"
    assert "tag" not in prov["resource"]["meta"]
    assert issue["resource"]["author"]["reference"] == dev["fullUrl"]
    target, patient = prov["resource"]["target"]
    assert target["reference"] == issue["fullUrl"]
    assert patient == {"reference": v.patient_ref, "type": "Patient", "display": "the patient"}
    ai_agent = prov["resource"]["agent"][0]
    assert ai_agent["who"]["reference"] == dev["fullUrl"]
    assert ai_agent["type"]["coding"][0]["code"] == "author"
    assert ai_agent["role"] == [{"coding": [codes.AI_DEVICE_TYPE]}]  # exactly, as the IG fixes it
    assert ai_agent["onBehalfOf"]["reference"] == "Organization/hosp-1"
    derivations = [e for e in prov["resource"]["entity"] if e["role"] == "derivation"]
    assert [e["what"]["reference"] for e in derivations] == [c["fullUrl"] for c in cards]
    model_cards = [
        x["valueReference"]["reference"]
        for x in dev["resource"]["extension"]
        if x["url"] == codes.MODEL_CARD_EXTENSION
    ]
    assert model_cards == [c["fullUrl"] for c in cards]
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])


def test_a_retry_builds_the_identical_bundle():
    v = make_verification(Verdict.MISMATCH)
    first = json.dumps(pill_write(v, ORG).bundle, sort_keys=True)
    again = json.dumps(pill_write(copy.deepcopy(v), ORG).bundle, sort_keys=True)
    assert first == again
    other = json.dumps(pill_write(replace(v, id="another-id"), ORG).bundle, sort_keys=True)
    assert other != first


def test_match_writes_nothing_unless_configured():
    v = make_verification(Verdict.MATCH)
    assert not v.needs_attention
    assert pill_write(v) is None
    write = pill_write(v, write_match=True)
    assert write is not None
    issue = resources_of(write.bundle)["DetectedIssue"]
    assert issue["code"]["coding"] == [
        {
            "system": codes.FINDING_SYSTEM,
            "code": "MATCH",
            "display": "Pill matches the prescribed product",
        }
    ]
    assert issue["severity"] == "low"
    assert issue["extension"] == [{"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": 0.94}]


def test_several_issues_are_all_in_the_evidence_most_serious_first():
    v = make_verification(
        Verdict.UNCERTAIN,
        (Finding.COUNT_MISMATCH, Finding.ORDER_INACTIVE),
        order_status="cancelled",
    )
    issue = detected_issue(v)
    data = issue.model_dump(mode="json", exclude_none=True)
    listed = [
        next(c["code"] for c in cc["coding"] if c["system"] == codes.FINDING_SYSTEM)
        for cc in data["evidence"][0]["code"]
    ]
    assert listed == ["ORDER_INACTIVE", "COUNT_MISMATCH", "UNCERTAIN"]
    assert data["code"]["text"] == "Order is not active"
    assert "status: cancelled" in data["detail"]
    assert "needs pharmacist review" in data["detail"]


def test_evidence_names_candidates_with_scores_and_codes():
    data = detected_issue(make_verification(Verdict.MISMATCH)).model_dump(
        mode="json", exclude_none=True
    )
    pill_ev = data["evidence"][1]
    product = pill_ev["code"][1]
    assert {"system": NDC_SYSTEM, "code": "00093-1048-01"} in product["coding"]
    assert {"system": RXNORM_SYSTEM, "code": "861007"} in product["coding"]
    assert "Metformin 500 mg tablet (score 0.91" in product["text"]
    assert "best score for a prescribed product 0.12" in product["text"]
    assert pill_ev["extension"] == [{"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": 0.91}]
    expected = data["evidence"][-1]["code"][0]
    assert expected["text"] == "prescribed product: Lisinopril 10 mg tablet"
    # confidence in the MISMATCH itself = 1 - best score of a prescribed product
    assert data["extension"] == [{"url": codes.AI_CONFIDENCE_EXTENSION, "valueDecimal": 0.88}]
    assert "identified as Metformin 500 mg tablet (score 0.91)" in data["detail"]


def test_uncertain_states_no_confidence_it_does_not_have():
    data = detected_issue(make_verification(Verdict.UNCERTAIN)).model_dump(
        mode="json", exclude_none=True
    )
    assert "extension" not in data
    assert data["severity"] == "moderate"
    assert "needs pharmacist review" in data["detail"]


def test_provenance_names_the_order_and_photo_hashes_never_the_photo():
    v = make_verification(Verdict.MISMATCH, photo_sha256=[hashlib.sha256(b"").hexdigest()] * 2)
    data = resources_of(pill_write(v, ORG).bundle)["Provenance"]
    *cards, order, photos_1, photos_2 = data["entity"]
    photos = [photos_1, photos_2]
    assert [c["role"] for c in cards] == ["derivation"] * len(v.models)
    assert order == {
        "role": "source",
        "what": {
            "reference": "MedicationRequest/mr-1",
            "type": "MedicationRequest",
            "display": "the order checked",
        },
    }
    assert len(photos) == 2
    ident = photos[0]["what"]["identifier"]
    assert ident == {
        "system": "urn:ietf:rfc:3986",
        "value": "ni:///sha-256;47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
    }
    assert "reference" not in photos[0]["what"]
    assert data["reason"] == [{"coding": [dict(codes.AIAST)]}]
    assert data["target"][0]["extension"][0]["valueDecimal"] == 0.88
    assert data["agent"][1]["type"]["coding"][0]["code"] == "custodian"
    assert '"data"' not in json.dumps(data)  # no Attachment anywhere


def test_sha256_uri_refuses_what_is_not_a_sha256():
    with pytest.raises(WritebackInputError):
        sha256_uri("abcd")


def test_device_names_verity_and_every_model_version():
    data = (
        AiDevice(tuple(MODELS), "checks things")
        .resource(ORG)
        .model_dump(mode="json", exclude_none=True)
    )
    # Fixed exactly by AI-Device: {system, code}, no display, no text.
    assert data["type"] == {"coding": [codes.AI_DEVICE_TYPE]}
    assert codes.AI_DEVICE_TYPE == {
        "system": "http://hl7.org/fhir/uv/aitransparency/CodeSystem/AIdeviceTypeCS",
        "code": "Artificial-Intelligence",
    }
    assert data["meta"]["profile"] == [codes.PROFILE_DEVICE, codes.PROFILE_IG_AI_DEVICE]
    assert [n["type"] for n in data["deviceName"]] == [
        "user-friendly-name",
        "model-name",
        "model-name",
    ]
    models = {
        (ver["component"]["value"], ver["value"]) for ver in data["version"] if "component" in ver
    }
    assert models == {("efficientnet-lite0", "1.0.0"), ("pp-ocrv4-rec", "1.4.4")}
    assert data["owner"] == {
        "reference": "Organization/hosp-1",
        "type": "Organization",
        "display": "St Elsewhere",
    }
    assert [x["url"] for x in data["extension"]] == [codes.MODEL_CARD_EXTENSION] * 2
    kinds = AiDevice(tuple(MODELS), "checks things", pill_issues.DEVICE_KINDS).resource(ORG)
    assert [
        (x.url, x.valueCodeableConcept.coding[0].code)
        for x in kinds.extension or []
        if x.url == codes.AI_KIND_EXTENSION
    ] == [
        (codes.AI_KIND_EXTENSION, "Hybrid-Models"),
        (codes.AI_KIND_EXTENSION, "Deterministic-AI"),
    ]


def test_a_new_model_version_is_a_new_device():
    def identifier(models, version="0.1.0"):
        return AiDevice(tuple(models), "checks things", software_version=version).identifier(
            WritebackSettings()
        )

    same = identifier(list(reversed(MODELS)))
    assert same == identifier(MODELS)
    assert identifier([ModelInfo("efficientnet-lite0", "1.0.1"), MODELS[1]]) != same
    assert identifier(MODELS, "9.9") != same


def test_refuses_a_verification_without_patient_or_time_zone():
    with pytest.raises(WritebackInputError, match="patient"):
        detected_issue(make_verification(patient_ref=None))
    with pytest.raises(WritebackInputError, match="time zone"):
        detected_issue(make_verification(created_at=datetime(2026, 11, 22, 3, 0)))


@pytest.mark.parametrize(
    ("ref", "rtype"),
    [
        ("MedicationRequest/123", "MedicationRequest"),
        ("https://ehr.example/fhir/R4/MedicationRequest/abc-1", "MedicationRequest"),
        ("Patient/1/_history/3", "Patient"),
        ("Device?identifier=https://h.example/sid/device|x", "Device"),
        ("urn:uuid:8a1f0b6e-8c33-4a0e-9d55-1f2f6b0f3b11", None),
        ("#contained", None),
        ("nonsense", None),
    ],
)
def test_reference_type(ref, rtype):
    assert reference_type(ref) == rtype


def test_docs_example_is_what_the_code_builds():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "fhir.md").read_text()
    block = text.split("```json\n")[-1].split("\n```")[0]
    assert json.loads(block) == pill_write(make_verification(Verdict.MISMATCH), ORG).bundle


def test_if_none_exist_is_percent_encoded():
    """Seen on a real server: an unencoded `+` became a space, so a retry created a duplicate."""
    v = make_verification(Verdict.MISMATCH, id="a+b&c=d%e f")
    issue = resources_entry(pill_write(v, ORG).bundle, "DetectedIssue")
    assert issue["request"]["ifNoneExist"] == (
        "identifier=https://fhir.hospital.example/verity/sid/verification|a%2Bb%26c%3Dd%25e%20f"
    )
    assert issue["resource"]["identifier"][0]["value"] == "a+b&c=d%e f"


def test_mismatch_text_says_ordered_and_identified_never_match_band():
    """A pharmacist read "score 0.79, MATCH band" on a MISMATCH as a match."""
    issue = resources_of(pill_write(make_verification(Verdict.MISMATCH), ORG).bundle)[
        "DetectedIssue"
    ]
    assert issue["detail"].startswith(
        "Wrong pill: the order is for lisinopril 10 MG Oral Tablet, but pill 1 (photo 1) was "
        "identified as Metformin 500 mg tablet (score 0.91) (score for the ordered medication "
        "0.12)."
    )
    assert "band" not in json.dumps(issue).lower()


def test_uncertain_and_count_texts_say_what_is_wrong():
    other = pill(Verdict.UNCERTAIN, expected=0.25, top=METFORMIN, score=0.6)
    unsure = detected_issue(make_verification(Verdict.UNCERTAIN, pills=[other]))
    assert unsure.detail.startswith(
        "Not confirmed: the order is for lisinopril 10 MG Oral Tablet, and pill 1 (photo 1) "
        "matched it only with score 0.25, too low to confirm; it looks most like Metformin 500 "
        "mg tablet (score 0.60); needs pharmacist review."
    )
    two = [pill(Verdict.MATCH, expected=0.93, top=LISINOPRIL, index=i) for i in (0, 1)]
    count = detected_issue(make_verification(Verdict.MATCH, (Finding.COUNT_MISMATCH,), pills=two))
    assert count.detail.startswith(
        "Wrong number of pills: the order's dose is 1 pill(s) of lisinopril 10 MG Oral Tablet, "
        "but the photo shows 2."
    )
    for issue in (unsure, count):
        assert "band" not in issue.model_dump_json().lower()


def test_configured_organisation_appears_where_the_docs_say(monkeypatch):
    """docs/fhir.md: Device.owner, the AI agent's onBehalfOf, and a custodian agent."""
    monkeypatch.setenv("VERITY_WRITEBACK__ORGANIZATION", "Organization/hosp-9")
    monkeypatch.setenv("VERITY_WRITEBACK__ORGANIZATION_DISPLAY", "St Elsewhere")
    settings = load_settings()
    org = {"reference": "Organization/hosp-9", "type": "Organization", "display": "St Elsewhere"}
    # exactly what the workflow calls (service/workflows/pill.py)
    write = pill_write(
        make_verification(), settings.writeback, write_match=settings.outbox.write_match
    )
    found = resources_of(write.bundle)
    assert found["Device"]["owner"] == org
    author, custodian = found["Provenance"]["agent"]
    assert author["onBehalfOf"] == org
    assert custodian["who"] == org and custodian["type"]["coding"][0]["code"] == "custodian"
    unset = resources_of(pill_write(make_verification(), WritebackSettings()).bundle)
    assert "owner" not in unset["Device"] and len(unset["Provenance"]["agent"]) == 1


def test_identifier_systems_and_device_name_come_from_settings(monkeypatch):
    monkeypatch.setenv("VERITY_WRITEBACK__IDENTIFIER_SYSTEM", "https://hosp.example/verity/v")
    monkeypatch.setenv("VERITY_WRITEBACK__DEVICE_NAME", "Ward 7 checker")
    v = make_verification()
    *_, dev, issue, prov = pill_write(v, load_settings().writeback).bundle["entry"]
    assert issue["resource"]["identifier"] == [
        {"system": "https://hosp.example/verity/v", "value": v.id}
    ]
    assert issue["request"]["ifNoneExist"] == f"identifier=https://hosp.example/verity/v|{v.id}"
    assert dev["resource"]["deviceName"][0] == {
        "name": "Ward 7 checker",
        "type": "user-friendly-name",
    }
    assert issue["resource"]["author"]["display"] == "Ward 7 checker"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORGANIZATION", "Patient/1"),
        ("ORGANIZATION", "Organization/"),
        ("ORGANIZATION_DISPLAY", "St Elsewhere"),  # without an organisation
        ("IDENTIFIER_SYSTEM", "verity"),  # not an absolute URI
        ("IDENTIFIER_SYSTEM", "urn:verity:a|b"),  # `|` splits a token search
        ("IDENTIFIER_SYSTEM", "https://fhir.hospital.example/verity/sid/device"),  # the Device's
        ("CANONICAL_BASE", "http://hosp.example/verity"),  # not https
        ("CANONICAL_BASE", "https://hosp.example/verity/"),  # trailing slash
        ("DEVICE_NAME", ""),
        ("DEVICE_ID", "has space"),
    ],
)
def test_unsafe_writeback_settings_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(f"VERITY_WRITEBACK__{name}", value)
    with pytest.raises(ConfigError, match="writeback"):
        load_settings()
