"""Imaging profiles: what the imaging builder must never emit is caught before queueing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from service.errors import InternalError
from service.writeback import codes
from service.writeback.imaging import imaging_write
from service.writeback.validate import validate
from tests.writeback.test_imaging import REGISTRY, by_type, entries_of, faulty
from tests.writeback.test_pills import ORG


def broken(rtype: str, mutate: Any, index: int = 0) -> list[str]:
    entries = entries_of(faulty())
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in entries}
    res = copy.deepcopy(by_type(entries, rtype)[index])
    mutate(res)
    return validate(res, registry=REGISTRY, fullurl_types=types)


def test_observation_profile_negative_cases():
    def bad(r: dict[str, Any]) -> None:
        r.pop("derivedFrom")
        r["device"] = {"reference": "Practitioner/p1"}
        r["valueBoolean"] = False
        r.pop("valueCodeableConcept")
        r["category"] = [{"text": "imaging-ish"}]
        r["code"] = {"coding": [{"system": codes.FINDING_SYSTEM, "code": "MISMATCH"}]}
        r["component"][0]["code"] = {"text": "a value"}

    found = broken("Observation", bad)
    for e in (
        "Observation.derivedFrom: 0 found, at least 1 required",
        "Observation.device: points at Practitioner, allowed ['Device']",
        "Observation.value[x]: valueBoolean not allowed, only ['CodeableConcept']",
        "Observation.value[x]: 0 found, at least 1 required",
        "Observation.category:imaging: 0 found, at least 1 required",
        f"Observation.code: no code from required value set {codes.IMAGING_FINDING_VALUESET}",
        "Observation.component.code: no code from required value set "
        f"{codes.CANONICAL_BASE}/ValueSet/imaging-check-component",
    ):
        assert e in found, e

    def outcome_outside(r: dict[str, Any]) -> None:
        r["valueCodeableConcept"] = {
            "coding": [{"system": codes.CHECK_OUTCOME_SYSTEM, "code": "ok"}]
        }

    assert broken("Observation", outcome_outside) == [
        f"Observation.value[x]: no code from required value set {codes.CANONICAL_BASE}"
        "/ValueSet/check-outcome"
    ]


def test_report_profile_negative_cases():
    def bad(r: dict[str, Any]) -> None:
        r.pop("conclusion")
        r["result"] = [{"reference": "DetectedIssue/di-1"}]
        r["imagingStudy"].append({"reference": "ImagingStudy/is-2"})
        r["category"] = [{"coding": [{"system": codes.V2_0074, "code": "LAB"}]}]
        r["conclusionCode"] = [{"coding": [{"system": codes.FINDING_SYSTEM, "code": "MATCH"}]}]
        r["code"] = {"text": "a report"}
        r["effectivePeriod"] = {"start": r.pop("effectiveDateTime")}

    found = broken("DiagnosticReport", bad)
    for e in (
        "DiagnosticReport.conclusion: 0 found, at least 1 required",
        "DiagnosticReport.result: points at DetectedIssue, allowed ['Observation']",
        "DiagnosticReport.imagingStudy: 2 found, at most 1 allowed",
        "DiagnosticReport.category:radiology: 0 found, at least 1 required",
        "DiagnosticReport.conclusionCode: no code from required value set "
        f"{codes.IMAGING_CONCLUSION_VALUESET}",
        "DiagnosticReport.effective[x]: effectivePeriod not allowed, only ['dateTime']",
    ):
        assert e in found, e
    assert any(e.startswith("DiagnosticReport.code:") for e in found)


def test_detected_issue_and_provenance_accept_imaging_only_where_they_should():
    def implicates_patient(r: dict[str, Any]) -> None:
        r["implicated"] = [{"reference": "Patient/pat-1"}]

    assert any(
        "DetectedIssue.implicated: points at Patient" in e
        for e in broken("DetectedIssue", implicates_patient)
    )

    def ai_agent_is_a_practitioner(r: dict[str, Any]) -> None:
        r["agent"][0]["who"] = {"reference": "Practitioner/p1", "type": "Practitioner"}

    assert any(
        e.startswith("Provenance.agent:AIagent.who: points at Practitioner")
        for e in broken("Provenance", ai_agent_is_a_practitioner)
    )

    def target_is_a_device(r: dict[str, Any]) -> None:
        r["target"].append({"reference": "Device/d1", "type": "Device"})

    assert any(
        "Provenance.target: points at Device" in e for e in broken("Provenance", target_is_a_device)
    )


def test_a_builder_bug_is_refused_before_queueing(monkeypatch):
    from service.writeback import imaging_checks

    real = imaging_checks.meta

    def without_aiast(profile: str) -> dict[str, Any]:
        out = real(profile)
        out["security"] = []
        return out

    monkeypatch.setattr(imaging_checks, "meta", without_aiast)
    with pytest.raises(InternalError, match="Observation that breaks its profile"):
        imaging_write(faulty(), ORG)
