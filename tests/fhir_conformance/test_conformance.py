"""Every resource Verity can write passes two independent engines (Medplum, FHIR.js) against R4,
the AI Transparency IG's profiles and Verity's package: 0 errors, only the listed warnings."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fhir_conformance.engines import VERITY_PACKAGE, problems
from tests.fhir_conformance.writes import imaging_cases, pill_cases, ungated


def all_cases(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[dict[str, Any]]]]:
    ungated(monkeypatch)
    return [*pill_cases(), *imaging_cases()]


def test_every_write_back_conforms(monkeypatch, tmp_path):
    cases = all_cases(monkeypatch)
    kinds = {r["resourceType"] for _, rs in cases for r in rs}
    assert {"Device", "DetectedIssue", "Provenance", "DiagnosticReport", "Observation"} <= kinds
    flat = [(name, r) for name, rs in cases for r in rs]
    found = problems([r for _, r in flat], tmp_path)
    distinct = sorted(set(found))
    assert not distinct, f"{len(found)} problems in {len(flat)} resources:\n" + "\n".join(distinct)


def _codings(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
            yield node["system"], node["code"]
        for v in node.values():
            yield from _codings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _codings(v)


def test_every_verity_code_written_is_in_the_built_package(monkeypatch):
    """Codes of Verity's own systems (e.g. check outcome `uncertain`, CHECK_UNCERTAIN) must be
    in the committed package's CodeSystem, or an EHR's terminology check rejects them."""
    systems = {}
    for p in VERITY_PACKAGE.glob("CodeSystem-*.json"):
        cs = json.loads(p.read_text())
        systems[cs["url"]] = {c["code"] for c in cs["concept"]}
    written = {c for _, rs in all_cases(monkeypatch) for r in rs for c in _codings(r)}
    mine = {(s, c) for s, c in written if s in systems or s.startswith("https://fhir.hospital")}
    missing = sorted(f"{s}|{c}" for s, c in mine if c not in systems.get(s, set()))
    assert not missing, missing
    base = "https://fhir.hospital.example/verity/CodeSystem/"
    assert {
        (base + "check-outcome", "uncertain"),
        (base + "verification-finding", "CHECK_UNCERTAIN"),
        (base + "verification-finding", "CONTENT_MISMATCH"),
    } <= mine


def _first(cases: list[tuple[str, list[dict[str, Any]]]], rtype: str) -> dict[str, Any]:
    return copy.deepcopy(next(r for _, rs in cases for r in rs if r["resourceType"] == rtype))


def test_device_type_with_a_display_fails(monkeypatch, tmp_path):
    device = _first(all_cases(monkeypatch), "Device")
    device["type"] = {
        "coding": [
            {
                "system": "http://hl7.org/fhir/uv/aitransparency/CodeSystem/AIdeviceTypeCS",
                "code": "Artificial-Intelligence",
                "display": "Artificial Intelligence",
            }
        ]
    }
    found = problems([device], tmp_path)
    assert any("Device.type" in p and " error " in p for p in found), found


def test_provenance_without_the_model_card_entity_fails(monkeypatch, tmp_path):
    prov = _first(all_cases(monkeypatch), "Provenance")
    prov["entity"] = [e for e in prov["entity"] if e["what"].get("type") != "DocumentReference"]
    found = problems([prov], tmp_path)
    assert any("verity-prov-1" in p or "model" in p.lower() for p in found), found


def test_provenance_agent_role_with_a_display_fails(monkeypatch, tmp_path):
    prov = _first(all_cases(monkeypatch), "Provenance")
    prov["agent"][0]["role"][0]["coding"][0]["display"] = "Artificial Intelligence"
    found = problems([prov], tmp_path)
    assert any("verity-prov-3" in p and " error " in p for p in found), found


def test_provenance_agent_role_with_a_text_fails(monkeypatch, tmp_path):
    prov = _first(all_cases(monkeypatch), "Provenance")
    prov["agent"][0]["role"][0]["text"] = "AI"
    found = problems([prov], tmp_path)
    assert any("verity-prov-3" in p and " error " in p for p in found), found


def test_device_without_the_model_card_extension_fails(monkeypatch, tmp_path):
    device = _first(all_cases(monkeypatch), "Device")
    device["extension"] = [e for e in device["extension"] if "modelCardDescription" not in e["url"]]
    found = problems([device], tmp_path)
    assert any("modelCardDescription" in p and " error " in p for p in found), found


def test_model_card_extension_under_another_url_fails(monkeypatch, tmp_path):
    device = _first(all_cases(monkeypatch), "Device")
    for e in device["extension"]:
        e["url"] = e["url"].replace("aitransparency.modelCardDescription", "modelCard")
    found = problems([device], tmp_path)
    assert any("modelCardDescription" in p and " error " in p for p in found), found
