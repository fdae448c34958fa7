"""Imaging write-back: a checked study becomes a valid, idempotent, AI-labelled R4 transaction
(DiagnosticReport + Observations + DetectedIssues + Provenance + Device), written once on the
real FHIR server and found by the searches docs/fhir.md gives an auditor."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from service.config import WritebackSettings
from service.verify.common import ModelInfo
from service.verify.imaging.results import (
    CheckResult,
    FindingCode,
    ImagingVerification,
    Outcome,
    StudyCounts,
)
from service.writeback import codes
from service.writeback.bundle import entry_url
from service.writeback.datatypes import WritebackInputError
from service.writeback.imaging import MAX_INSTANCE_HASHES, imaging_device, imaging_write
from service.writeback.imaging_checks import MAX_VALUE_CHARS, MAX_VALUES
from service.writeback.imaging_issues import DISCLAIMER
from service.writeback.validate import registry_for, validate
from tests.writeback.test_pills import DOMAIN_RESOURCE, ORG, R4_ELEMENTS

WHEN = datetime(2026, 11, 22, 3, 15, 0, tzinfo=UTC)
MODELS = [ModelInfo("dicom-fingerprint", "1.0.0"), ModelInfo("efficientnet-lite0", "1.0.0")]
REGISTRY = registry_for(codes.CANONICAL_BASE)
SYSTEM = "https://fhir.hospital.example/verity/sid/verification"
PROFILES = {
    "DiagnosticReport": codes.PROFILE_IMAGING_REPORT,
    "Observation": codes.PROFILE_IMAGING_CHECK,
    "DetectedIssue": codes.PROFILE_DETECTED_ISSUE,
    "Provenance": codes.PROFILE_PROVENANCE,
    "Device": codes.PROFILE_DEVICE,
    "DocumentReference": codes.PROFILE_MODEL_CARD,
}
IG_PROFILES = {
    "Provenance": codes.PROFILE_IG_AI_PROVENANCE,
    "Device": codes.PROFILE_IG_AI_DEVICE,
    "DocumentReference": codes.PROFILE_IG_AI_MODEL_CARD,
}
# FHIR R4 4.0.1 element names of the two resources only imaging writes (R5 renamed
# DiagnosticReport.imagingStudy to `study` and added `note`: neither may slip onto the wire).
R4_IMAGING = {
    "DiagnosticReport": DOMAIN_RESOURCE
    | {
        "identifier", "basedOn", "status", "category", "code", "subject", "encounter",
        "effectiveDateTime", "effectivePeriod", "issued", "performer", "resultsInterpreter",
        "specimen", "result", "imagingStudy", "media", "conclusion", "conclusionCode",
        "presentedForm",
    },
    "Observation": DOMAIN_RESOURCE
    | {
        "identifier", "basedOn", "partOf", "status", "category", "code", "subject", "focus",
        "encounter", "effectiveDateTime", "effectivePeriod", "effectiveTiming",
        "effectiveInstant", "issued", "performer", "valueCodeableConcept", "valueString",
        "dataAbsentReason", "interpretation", "note", "bodySite", "method", "specimen", "device",
        "referenceRange", "hasMember", "derivedFrom", "component",
    },
}  # fmt: skip
R4_COMPONENT = {"code", "valueString", "valueCodeableConcept", "dataAbsentReason", "extension"}


def check(code: FindingCode, outcome: Outcome = Outcome.PASSED, **kw: Any) -> CheckResult:
    severity = kw.pop("severity", "moderate")
    summary = kw.pop("summary", f"{code.value} compared: {outcome.value}.")
    return CheckResult(code, outcome, severity, summary, **kw)


def passed_checks() -> list[CheckResult]:
    return [
        check(FindingCode.PATIENT_ID_MISMATCH, dicom=("13109565",), expected=("13109565",)),
        check(FindingCode.DEMOGRAPHICS_MISMATCH, dicom=("DOE^JANE",), expected=("Doe, Jane",)),
        check(FindingCode.MODALITY_MISMATCH, dicom=("CT",), expected=("CT",)),
        check(FindingCode.LATERALITY_MISMATCH, Outcome.NOT_APPLICABLE, summary="No side ordered."),
        check(FindingCode.STUDY_INCOMPLETE, dicom=("9 instances",), expected=("9 instances",)),
    ]


def make_study(checks: list[CheckResult] | None = None, **over: Any) -> ImagingVerification:
    base = ImagingVerification(
        id="5f0c9a8e-2d4b-4c1e-9a77-3b2c1d0e9f81",
        created_at=WHEN,
        study_ref="ImagingStudy/is-1",
        study_uid="2.25.88497508763858446420687665680020422297",
        checks=checks if checks is not None else passed_checks(),
        counts=StudyCounts(1, 9, 1, 9, 9, 9),
        patient_ref="Patient/pat-1",
        order_ref="ServiceRequest/sr-1",
        accession="A42210463",
        instance_sha256=[hashlib.sha256(f"inst-{i}".encode()).hexdigest() for i in range(9)],
        models=list(MODELS),
        caller="ehr-client",
    )
    return replace(base, **over)


def faulty() -> ImagingVerification:
    """PATIENT_ID_MISMATCH + SLICE_GAP failed, DUPLICATE_IMAGE could not be checked."""
    checks = [
        check(
            FindingCode.PATIENT_ID_MISMATCH,
            Outcome.FAILED,
            severity="moderate",  # a check's own severity; identity is raised to high
            summary="DICOM PatientID differs from the MRN.",
            dicom=("99999999",),
            expected=("13109565",),
            instances=("2.25.1001", "2.25.1002"),
            evidence={"issuer": "NORTHSIDE.EXAMPLE", "instances_differing": 9, "raw": [1, 2]},
        ),
        check(FindingCode.MODALITY_MISMATCH, dicom=("CT",), expected=("CT",)),
        check(
            FindingCode.SLICE_GAP,
            Outcome.FAILED,
            summary="Series 1 jumps from InstanceNumber 4 to 6 with a 10 mm position step.",
            dicom=("4", "6"),
            instances=("2.25.1004", "2.25.1006"),
        ),
        check(
            FindingCode.DUPLICATE_IMAGE,
            Outcome.COULD_NOT_CHECK,
            severity="high",
            summary="No decodable pixels to fingerprint.",
        ),
        check(FindingCode.LATERALITY_MISMATCH, Outcome.NOT_APPLICABLE, summary="No side ordered."),
    ]
    return make_study(checks)


CASES = [("clean", make_study), ("faulty", faulty)]
IDS = [c[0] for c in CASES]


def entries_of(v: ImagingVerification, cfg: WritebackSettings = ORG) -> list[dict[str, Any]]:
    return list(imaging_write(v, cfg).bundle["entry"])


PROFILES_OUT = ("DiagnosticReport", "Observation", "DetectedIssue")  # what the checks wrote


def device_url(entries: list[dict[str, Any]]) -> str:
    return next(e["fullUrl"] for e in entries if e["resource"]["resourceType"] == "Device")


def inputs(prov: dict[str, Any]) -> list[dict[str, Any]]:
    """The Provenance's `source` entities: what the AI read (the model cards come first)."""
    return [x for x in prov["entity"] if x["role"] == "source"]


def by_type(entries: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in entries if e["resource"]["resourceType"] == rtype]


# --- the Bundle --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "make"), CASES, ids=IDS)
def test_order_of_entries_and_one_resource_per_check(name, make):
    v = make()
    write = imaging_write(v, ORG)
    get_fhir_model_class("Bundle").model_validate(write.bundle)
    types = [e["resource"]["resourceType"] for e in write.bundle["entry"]]
    failed = [c for c in v.checks if c.failed]
    assert types == [
        *["DocumentReference"] * len(v.models),
        "Device",
        "DiagnosticReport",
        *["Observation"] * len(v.checks),
        *["DetectedIssue"] * len(failed),
        "Provenance",
    ]
    assert (write.resource_type, write.identifier_system, write.identifier_value) == (
        "DiagnosticReport",
        SYSTEM,
        v.id,
    )


@pytest.mark.parametrize(("name", "make"), CASES, ids=IDS)
@pytest.mark.parametrize("cfg", [ORG, WritebackSettings()], ids=["with-org", "no-org"])
def test_every_resource_conforms_to_its_profile_and_to_r4(name, make, cfg):
    entries = entries_of(make(), cfg)
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in entries}
    for e in entries:
        res = e["resource"]
        rtype = res["resourceType"]
        get_fhir_model_class(rtype).model_validate(res)
        claimed = [PROFILES[rtype], *([IG_PROFILES[rtype]] if rtype in IG_PROFILES else [])]
        assert res["meta"]["profile"] == claimed
        assert validate(res, registry=REGISTRY, fullurl_types=types) == [], rtype
        assert set(res) <= {**R4_ELEMENTS, **R4_IMAGING}[rtype], rtype
        for comp in res.get("component", []):
            assert set(comp) <= R4_COMPONENT
        if rtype == "DocumentReference":  # the model card: written by people, not asserted
            assert "security" not in res["meta"]
            continue
        assert dict(codes.AIAST) in res["meta"]["security"], rtype
        assert res["text"]["status"] == "generated"
        assert e["request"] == {
            "method": "POST",
            "url": rtype,
            "ifNoneExist": e["request"]["ifNoneExist"],
        }
        if rtype != "Device":
            assert DISCLAIMER in res["text"]["div"].replace("&#x27;", "'"), rtype


def test_identifiers_are_stable_and_derived_from_the_verification_and_finding():
    v = faulty()
    first = json.dumps(imaging_write(v, ORG).bundle, sort_keys=True)
    again = json.dumps(imaging_write(copy.deepcopy(v), ORG).bundle, sort_keys=True)
    assert first == again
    assert json.dumps(imaging_write(replace(v, id="other"), ORG).bundle, sort_keys=True) != first
    entries = entries_of(v)
    values = {
        e["resource"]["resourceType"] + ":" + e["resource"]["identifier"][0]["value"]
        for e in entries
        if e["resource"]["resourceType"] in ("DiagnosticReport", "Observation", "DetectedIssue")
    }
    assert values == {
        f"DiagnosticReport:{v.id}",
        *(f"Observation:{v.id}/check/{c.code}" for c in v.checks),
        f"DetectedIssue:{v.id}/issue/PATIENT_ID_MISMATCH",
        f"DetectedIssue:{v.id}/issue/SLICE_GAP",
    }
    for e in entries:
        ident = (e["resource"].get("identifier") or [{}])[0]
        if ident.get("system") == SYSTEM:
            assert e["fullUrl"] == entry_url(SYSTEM, ident["value"])
            assert e["request"]["ifNoneExist"].startswith(f"identifier={SYSTEM}|")
    assert len({e["fullUrl"] for e in entries}) == len(entries)


def test_a_finding_checked_twice_gets_two_distinct_identifiers():
    twice = [
        check(FindingCode.STUDY_INCOMPLETE, Outcome.FAILED, summary="Series 2 missing."),
        check(FindingCode.STUDY_INCOMPLETE, Outcome.FAILED, summary="Instance 4 missing."),
    ]
    v = make_study(twice)
    values = [r["identifier"][0]["value"] for r in by_type(entries_of(v), "DetectedIssue")]
    assert values == [f"{v.id}/issue/STUDY_INCOMPLETE", f"{v.id}/issue/STUDY_INCOMPLETE/2"]


@pytest.mark.parametrize(("name", "make"), CASES, ids=IDS)
def test_every_reference_between_resources_resolves_inside_the_bundle(name, make):
    entries = entries_of(make())
    urls = {e["fullUrl"]: e["resource"]["resourceType"] for e in entries}
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("urn:uuid:"):
                found.append(ref)
                assert ref in urls, ref
                assert node.get("type") in (None, urls[ref])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for e in entries:
        walk(e["resource"])
    report = by_type(entries, "DiagnosticReport")[0]
    observations = [e["fullUrl"] for e in entries if e["resource"]["resourceType"] == "Observation"]
    assert [r["reference"] for r in report["result"]] == observations
    prov = by_type(entries, "Provenance")[0]
    written = [e["fullUrl"] for e in entries if e["resource"]["resourceType"] in PROFILES_OUT]
    assert [t["reference"] for t in prov["target"]] == [*written, "Patient/pat-1"]
    cards = [e["fullUrl"] for e in entries if e["resource"]["resourceType"] == "DocumentReference"]
    assert [x["what"]["reference"] for x in prov["entity"] if x["role"] == "derivation"] == cards
    assert found


# --- what each resource says ------------------------------------------------------------


def test_clean_report_says_no_problem_and_codes_no_finding():
    v = make_study()
    entries = entries_of(v)
    report = by_type(entries, "DiagnosticReport")[0]
    assert report["status"] == "preliminary"
    assert report["category"][0]["coding"][0]["code"] == "RAD"
    assert report["subject"]["reference"] == "Patient/pat-1"
    assert report["basedOn"] == [{"reference": "ServiceRequest/sr-1", "type": "ServiceRequest"}]
    assert report["imagingStudy"] == [{"reference": "ImagingStudy/is-1", "type": "ImagingStudy"}]
    assert "performer" not in report
    assert report["conclusion"].startswith(
        "No problem found: the study matches the order and the patient on all 4 checks"
    )
    assert report["conclusion"].endswith(DISCLAIMER)
    assert [c["coding"][0]["code"] for c in report["conclusionCode"]] == ["NO_FINDING"]
    assert by_type(entries, "DetectedIssue") == []
    outcomes = [
        o["valueCodeableConcept"]["coding"][0]["code"] for o in by_type(entries, "Observation")
    ]
    assert outcomes == ["passed", "passed", "passed", "not-applicable", "passed"]


def test_faulty_report_lists_failed_findings_most_serious_first_and_what_was_not_checked():
    entries = entries_of(faulty())
    report = by_type(entries, "DiagnosticReport")[0]
    assert [c["coding"][0]["code"] for c in report["conclusionCode"]] == [
        "PATIENT_ID_MISMATCH",
        "SLICE_GAP",
    ]
    assert all(len(c["coding"]) == 1 for c in report["conclusionCode"])  # Verity codes only
    assert report["conclusion"].startswith(
        "Verity found 2 problem(s) with this study: Patient ID in the images does not match "
        "the patient; Slice missing from a series. Could not check: Duplicate image check."
    )


def test_only_could_not_check_is_check_incomplete_not_no_finding():
    v = make_study([*passed_checks(), check(FindingCode.UNREADABLE_IMAGE, Outcome.COULD_NOT_CHECK)])
    report = by_type(entries_of(v), "DiagnosticReport")[0]
    assert [c["coding"][0]["code"] for c in report["conclusionCode"]] == ["CHECK_INCOMPLETE"]
    assert report["conclusion"].startswith("No problem found, but not every check could be made.")


def test_observation_carries_the_compared_values_bounded():
    long = "X" * (MAX_VALUE_CHARS + 50)
    many = tuple(f"v{i}" for i in range(MAX_VALUES + 5))
    c = check(FindingCode.ACCESSION_MISMATCH, Outcome.FAILED, dicom=(long, *many), expected=("A1",))
    obs = by_type(entries_of(make_study([c])), "Observation")[0]
    comps = [(x["code"]["coding"][0]["code"], x["valueString"]) for x in obs["component"]]
    dicom = [s for role, s in comps if role == "dicom-value"]
    assert len(dicom) == MAX_VALUES and len(dicom[0]) == MAX_VALUE_CHARS
    assert dicom[0].endswith("…")
    assert ("ehr-value", "A1") in comps
    assert obs["interpretation"][0]["coding"][0]["code"] == "A"
    assert "and 6 more" in obs["text"]["div"]


def test_failed_observation_components_and_links():
    v = faulty()
    entries = entries_of(v)
    obs = by_type(entries, "Observation")[0]
    assert obs["code"]["coding"] == [
        {
            "system": codes.FINDING_SYSTEM,
            "code": "PATIENT_ID_MISMATCH",
            "display": "Patient ID in the images does not match the patient",
        }
    ]
    assert obs["code"]["text"] == "Patient ID check"
    assert obs["category"][0]["coding"][0]["code"] == "imaging"
    assert obs["derivedFrom"] == [{"reference": "ImagingStudy/is-1", "type": "ImagingStudy"}]
    assert obs["device"]["reference"] == device_url(entries)
    comps = [(x["code"]["coding"][0]["code"], x["valueString"]) for x in obs["component"]]
    assert comps == [
        ("dicom-value", "99999999"),
        ("ehr-value", "13109565"),
        ("sop-instance", "2.25.1001"),
        ("sop-instance", "2.25.1002"),
        ("evidence", "instances_differing: 9"),
        ("evidence", "issuer: NORTHSIDE.EXAMPLE"),
    ]
    passed = by_type(entries, "Observation")[1]
    assert "interpretation" not in passed


def test_detected_issue_per_failed_check():
    v = faulty()
    entries = entries_of(v)
    obs_urls = {
        e["resource"]["identifier"][0]["value"]: e["fullUrl"]
        for e in entries
        if e["resource"]["resourceType"] == "Observation"
    }
    pid, gap = by_type(entries, "DetectedIssue")
    assert pid["severity"] == "high"  # identity, although the check said moderate
    assert gap["severity"] == "moderate"
    # No HL7 code: KEY206 is outside R4's detectedissue-category value set (docs/fhir.md).
    assert {(c["system"], c["code"]) for c in pid["code"]["coding"]} == {
        (codes.FINDING_SYSTEM, "PATIENT_ID_MISMATCH"),
    }
    assert [c["system"] for c in gap["code"]["coding"]] == [codes.FINDING_SYSTEM]
    for issue, code in ((pid, "PATIENT_ID_MISMATCH"), (gap, "SLICE_GAP")):
        assert issue["status"] == "preliminary"
        assert issue["patient"]["reference"] == "Patient/pat-1"
        assert [r["reference"] for r in issue["implicated"]] == [
            "ImagingStudy/is-1",
            "ServiceRequest/sr-1",
        ]
        assert issue["author"]["reference"] == device_url(entries)
        assert issue["evidence"][0]["detail"] == [
            {"reference": obs_urls[f"{v.id}/check/{code}"], "type": "Observation"}
        ]
        assert issue["detail"].endswith(DISCLAIMER)
        assert issue["identifiedDateTime"] == "2026-11-22T03:15:00Z"
    assert "DICOM: 99999999; EHR: 13109565." in pid["detail"]


def test_provenance_names_study_order_and_bounded_instance_hashes():
    hashes = [hashlib.sha256(f"i{i}".encode()).hexdigest() for i in range(MAX_INSTANCE_HASHES + 30)]
    v = make_study(instance_sha256=hashes)
    prov = by_type(entries_of(v), "Provenance")[0]
    ent = inputs(prov)
    assert ent[0]["what"]["reference"] == "ImagingStudy/is-1"
    assert ent[1]["what"]["reference"] == "ServiceRequest/sr-1"
    digest = hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()
    assert ent[2]["what"]["display"].startswith(
        f"all {len(hashes)} checked instance(s): SHA-256 {digest}"
    )
    listed = ent[3:]
    assert len(listed) == MAX_INSTANCE_HASHES
    assert all(e["what"]["identifier"]["value"].startswith("ni:///sha-256;") for e in listed)
    assert hashes[0] in listed[0]["what"]["display"]
    assert all("reference" not in e["what"] for e in ent[2:])


def test_without_order_the_report_and_provenance_still_conform():
    v = make_study(order_ref=None)
    entries = entries_of(v)
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in entries}
    for e in entries:
        assert validate(e["resource"], registry=REGISTRY, fullurl_types=types) == []
    assert "basedOn" not in by_type(entries, "DiagnosticReport")[0]
    prov = by_type(entries, "Provenance")[0]
    assert [x["what"].get("type") for x in inputs(prov)[:2]] == ["ImagingStudy", None]


def test_device_names_the_models_and_the_imaging_purpose():
    v = faulty()
    dev = by_type(entries_of(v), "Device")[0]
    assert "checks imaging studies in the PACS" in dev["text"]["div"]
    kinds = [
        x["valueCodeableConcept"]["coding"][0]["code"]
        for x in dev["extension"]
        if x["url"] == codes.AI_KIND_EXTENSION
    ]
    assert kinds == [
        "Rule-Based-Systems",
        "Medical-Quality-Control",
        "AI-for-Medical-Imaging-Data",
        "Deterministic-AI",
    ]
    assert [n["name"] for n in dev["deviceName"]] == ["Verity", *(m.name for m in MODELS)]
    assert imaging_device(v).identifier(ORG) == dev["identifier"][0]["value"]


def test_refuses_what_it_cannot_write():
    with pytest.raises(WritebackInputError, match="patient"):
        imaging_write(make_study(patient_ref=None))
    with pytest.raises(WritebackInputError, match="at least one check"):
        imaging_write(make_study([]))
    with pytest.raises(WritebackInputError, match="time zone"):
        imaging_write(make_study(created_at=datetime(2026, 11, 22, 3, 15)))
