"""The planner that cuts a transaction too large for the FHIR server into parts (pure)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from service.config import ConfigError, load_settings
from service.errors import FhirUnavailable, InternalError
from service.writeback.parts import locations, part_bundle, plan_parts, reference_of
from tests.writeback import sample
from tests.writeback.large import CHECKS, large_write

SYSTEM = "urn:verity:test:parts"


def entries_of(n_checks: int = CHECKS) -> list[dict[str, Any]]:
    return large_write(f"Patient/{uuid.uuid4()}", SYSTEM, checks=n_checks).bundle["entry"]


def urn_refs(entry: dict[str, Any]) -> set[str]:
    out: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if str(node.get("reference", "")).startswith("urn:uuid:"):
                out.add(node["reference"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(entry["resource"])
    return out


def types_in(entries: list[dict[str, Any]], part: tuple[int, ...]) -> list[str]:
    return [entries[i]["resource"]["resourceType"] for i in part]


@pytest.mark.parametrize("cap", [3, 4, 5, 7, 8, 9, 13, 19])
def test_parts_respect_references_and_the_cap(cap: int) -> None:
    entries = entries_of()
    parts = plan_parts(entries, cap)
    order = [i for p in parts for i in p]
    assert sorted(order) == list(range(len(entries)))  # every entry exactly once
    assert all(1 <= len(p) <= cap for p in parts)
    assert len(parts) == -(-len(entries) // cap)  # no more parts than the cap needs
    position = {entries[i]["fullUrl"]: k for k, i in enumerate(order)}
    for k, i in enumerate(order):
        for target in urn_refs(entries[i]):
            if target != entries[i]["fullUrl"]:
                assert position[target] < k  # what it references was posted before or with it


def test_order_keeps_the_builder_order_where_it_can() -> None:
    entries = entries_of()
    parts = plan_parts(entries, 8)
    order = [i for p in parts for i in p]
    kinds = [entries[i]["resource"]["resourceType"] for i in order]
    assert kinds == [
        "DocumentReference",  # the model card, which the Device and the Provenance reference
        "Device",
        *["Observation"] * CHECKS,
        "DiagnosticReport",
        "Provenance",
    ]
    observations = [i for i in order if entries[i]["resource"]["resourceType"] == "Observation"]
    assert observations == sorted(observations)
    assert [len(p) for p in parts] == [8, 8, 5]


def test_a_bundle_that_fits_stays_whole_in_the_builders_order() -> None:
    pill = sample.write_for(f"Patient/{uuid.uuid4()}", SYSTEM).bundle["entry"]
    assert plan_parts(pill, 8) == [tuple(range(len(pill)))]
    assert len(pill) == 5  # 2 model cards + Device + DetectedIssue + Provenance: under Medplum's 8
    entries = entries_of()
    # the report comes before its Observations: within one transaction the server resolves it
    assert plan_parts(entries, len(entries)) == [tuple(range(len(entries)))]


def test_a_reference_cycle_is_verity_s_own_bug() -> None:
    entries = copy.deepcopy(entries_of(3))
    device = entries[1]
    assert device["resource"]["resourceType"] == "Device"
    device["resource"]["owner"] = {"reference": entries[-1]["fullUrl"]}  # Device -> Provenance
    with pytest.raises(InternalError, match="reference each other"):
        plan_parts(entries, 3)


def test_an_unknown_urn_reference_is_verity_s_own_bug() -> None:
    entries = copy.deepcopy(entries_of(3))
    entries[2]["resource"]["subject"] = {"reference": f"urn:uuid:{uuid.uuid4()}"}
    with pytest.raises(InternalError, match="lacks"):
        plan_parts(entries, 8)  # refused even when it fits: it could never resolve


def test_part_bundle_resolves_earlier_parts_and_keeps_its_own_urns() -> None:
    entries = entries_of()
    first, second, last = plan_parts(entries, 8)
    response = {
        "entry": [
            {"response": {"status": "201", "location": f"{t}/id-{i}/_history/1"}}
            for t, i in zip(types_in(entries, first), first, strict=True)
        ]
    }
    located = locations(entries, first, response)
    assert located[entries[1]["fullUrl"]] == "Device/id-1"
    bundle = part_bundle(entries, second, located)
    assert bundle["type"] == "transaction" and len(bundle["entry"]) == len(second)
    for entry in bundle["entry"]:
        assert entry["resource"]["device"]["reference"] == "Device/id-1"
        assert entry["request"]["ifNoneExist"]  # still a conditional create
    assert entries[second[0]]["resource"]["device"]["reference"].startswith("urn:uuid:")

    with pytest.raises(FhirUnavailable):  # the report needs Observations of part 2 too
        part_bundle(entries, last, located)
    located |= {entries[i]["fullUrl"]: f"Observation/id-{i}" for i in second}
    report = next(
        e for e in part_bundle(entries, last, located)["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    )  # fmt: skip
    results = [r["reference"] for r in report["resource"]["result"]]
    resolved = [r for r in results if not r.startswith("urn:uuid:")]
    assert len(resolved) == 14 and all(r.startswith("Observation/id-") for r in resolved)
    same_part = {entries[i]["fullUrl"] for i in last}
    assert set(results) - set(resolved) <= same_part and len(results) == CHECKS


def test_locations_refuse_an_answer_of_another_size() -> None:
    entries = entries_of()
    first = plan_parts(entries, 8)[0]
    with pytest.raises(FhirUnavailable):
        locations(entries, first, {"entry": [{"response": {"location": "Device/1"}}]})


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("Observation/abc", "Observation/abc"),
        ("Observation/abc/_history/2", "Observation/abc"),
        ("https://ehr.example/fhir/Observation/abc/_history/2", "Observation/abc"),
        ("https://ehr.example/fhir/Observation/abc", "Observation/abc"),
        ("", None),
        (None, None),
        ("abc", None),
    ],
)
def test_reference_of_a_location(location: object, expected: str | None) -> None:
    assert reference_of(location) == expected


def test_the_cap_is_a_setting_and_refuses_a_useless_value(monkeypatch) -> None:
    assert load_settings().writeback.max_transaction_entries == 8  # Medplum's cap
    monkeypatch.setenv("VERITY_WRITEBACK__MAX_TRANSACTION_ENTRIES", "12")
    assert load_settings().writeback.max_transaction_entries == 12
    monkeypatch.setenv("VERITY_WRITEBACK__MAX_TRANSACTION_ENTRIES", "2")
    with pytest.raises(ConfigError):
        load_settings()


def test_the_provenance_condition_names_its_target_as_the_server_located_it() -> None:
    """`ifNoneExist: target=urn:uuid:...` of a Provenance whose report went in an earlier part
    becomes `target=DiagnosticReport/<id>`: a retried part still finds the Provenance."""
    entries = entries_of()
    parts = plan_parts(entries, len(entries) - 1)
    assert [len(p) for p in parts] == [len(entries) - 1, 1]
    (prov_index,) = parts[1]
    prov = entries[prov_index]
    report = next(e for e in entries if e["resource"]["resourceType"] == "DiagnosticReport")
    assert prov["request"]["ifNoneExist"] == f"target={report['fullUrl']}"
    located = {entries[i]["fullUrl"]: f"{t}/id-{i}" for t, i in zip(
        types_in(entries, parts[0]), parts[0], strict=True
    )}  # fmt: skip
    sent = part_bundle(entries, parts[1], located)["entry"][0]
    assert sent["request"]["ifNoneExist"] == f"target={located[report['fullUrl']]}"
    assert sent["request"]["ifNoneExist"].startswith("target=DiagnosticReport/id-")
    with pytest.raises(FhirUnavailable):
        part_bundle(entries, parts[1], {})
    whole = part_bundle(entries, tuple(range(len(entries))), {})
    assert whole["entry"][prov_index]["request"]["ifNoneExist"] == prov["request"]["ifNoneExist"]
