"""A write-back larger than one transaction (Device + 17 Observations + a DiagnosticReport whose
`result` references them all + Provenance: 20 entries), built by the one builder and validated
against the imaging profiles of `fhir_profiles/`, for the part-splitting tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from service.config import WritebackSettings
from service.verify.common import ModelInfo
from service.writeback import codes
from service.writeback.bundle import Activity, Entry, OutboxWrite, transaction
from service.writeback.datatypes import instant, meta, narrative, ref
from service.writeback.device import AiDevice

CHECK_PROFILE = f"{codes.CANONICAL_BASE}/StructureDefinition/verity-imaging-check"
REPORT_PROFILE = f"{codes.CANONICAL_BASE}/StructureDefinition/verity-imaging-report"
DISCLAIMER = "AI-assisted test write-back; not reviewed by a clinician."
CHECKS = 17
IMAGING_CATEGORY = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "imaging",
}


def large_write(
    patient: str, system: str, key: str | None = None, checks: int = CHECKS
) -> OutboxWrite:
    """The Bundle the builder makes for one report of `checks` Observations (fresh Device)."""
    key = key or str(uuid.uuid4())
    settings = WritebackSettings(identifier_system=system)
    # a model version of its own: the Device is new to the server, so it can be counted
    device = AiDevice((ModelInfo("split-test", key),), "tests splitting a large write-back")
    now = datetime.now(UTC)
    study = ref(f"ImagingStudy/{key}")
    observations = [
        Entry.of(
            _observation(patient, study, device, settings, system, f"{key}-{k}", now),
            system,
            f"{key}-{k}",
        )
        for k in range(checks)
    ]
    report = Entry.of(
        _report(patient, study, observations, settings, system, key, now), system, key
    )
    activity = Activity(
        key=key,
        occurred=now,
        # the Provenance profile on this branch still requires the order as a MedicationRequest
        sources=[{"role": "source", "what": ref(f"MedicationRequest/{key}", "the order")}],
        summary=f"Test report {key}.",
        disclaimer=DISCLAIMER,
    )
    return transaction(device, [report, *observations], activity, settings)


def _observation(
    patient: str,
    study: dict[str, str],
    device: AiDevice,
    settings: WritebackSettings,
    system: str,
    value: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "meta": meta(CHECK_PROFILE),
        "text": narrative(f"Check {value} passed.", DISCLAIMER),
        "identifier": [{"system": system, "value": value}],
        "status": "preliminary",
        "category": [{"coding": [IMAGING_CATEGORY]}],
        "code": {"text": f"check {value}"},
        "subject": ref(patient),
        "issued": instant(now),
        "device": device.reference(settings),
        "derivedFrom": [study],
        "valueBoolean": True,
    }


def _report(
    patient: str,
    study: dict[str, str],
    observations: list[Entry],
    settings: WritebackSettings,
    system: str,
    value: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "meta": meta(REPORT_PROFILE),
        "text": narrative(f"Report {value}.", DISCLAIMER),
        "identifier": [{"system": system, "value": value}],
        "status": "preliminary",
        "category": [{"text": "imaging check"}],
        "code": {"text": "imaging study check"},
        "subject": ref(patient),
        "issued": instant(now),
        "imagingStudy": [study],
        "result": [ref(o.full_url, rtype="Observation") for o in observations],
        "conclusion": f"All checks passed. {DISCLAIMER}",
    }
