"""The code systems, codes and canonical URLs every domain writes with, with their source.

HL7 codes are only the ones published by HL7 (terminology.hl7.org, the AI Transparency on FHIR
IG); anything HL7 has no code for is in Verity's own code system, whose CodeSystem and
ValueSet resources live in `fhir_profiles/`. Each domain's issue table (its codes, words and
disclaimer) lives in its own module, e.g. `pill_issues.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# Verity's canonical base. `.example` is reserved (RFC 2606) so it can never collide with a
# real site; a deployment that publishes these definitions replaces it here and in
# fhir_profiles/ together (see docs/fhir.md).
CANONICAL_BASE: Final = "https://verity.example/fhir"
FINDING_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/verification-finding"
FINDING_VALUESET: Final = f"{CANONICAL_BASE}/ValueSet/verification-finding"
DETECTED_ISSUE_CODE_VALUESET: Final = f"{CANONICAL_BASE}/ValueSet/detectedissue-code"
PROFILE_DETECTED_ISSUE: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-detectedissue"
PROFILE_PROVENANCE: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-provenance"
PROFILE_DEVICE: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-ai-device"

# HL7 terminology (THO).
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_OBSERVATION_VALUE: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
V3_DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_PARTICIPANT_TYPE: Final = (
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
)
URI_IDENTIFIER_SYSTEM: Final = "urn:ietf:rfc:3986"

# HL7 AI Transparency on FHIR IG (hl7.fhir.uv.aitransparency).
AI_DEVICE_TYPE_SYSTEM: Final = "http://hl7.org/fhir/uv/aitransparency/CodeSystem/AIdeviceTypeCS"
AI_KIND_EXTENSION: Final = (
    "http://hl7.org/fhir/uv/aitransparency/StructureDefinition/aitransparency.AIKind"
)
AI_CONFIDENCE_EXTENSION: Final = (
    "http://hl7.org/fhir/uv/aitransparency/StructureDefinition/AIconfidence"
)

AIAST: Final = {
    "system": V3_OBSERVATION_VALUE,
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
AI_DEVICE_TYPE: Final = {
    "system": AI_DEVICE_TYPE_SYSTEM,
    "code": "Artificial-Intelligence",
    "display": "All kinds of Artificial Intelligence",
}
AI_KIND_HYBRID: Final = {
    "system": AI_DEVICE_TYPE_SYSTEM,
    "code": "Hybrid-Models",
    "display": "Hybrid Models",
}


@dataclass(frozen=True)
class IssueKind:
    """One thing a domain reports, with its Verity code, its HL7 code (if one fits), severity."""

    code: str
    display: str
    definition: str
    severity: str  # DetectedIssue.severity: high | moderate | low
    rank: int  # lower is reported first when a verification has several issues
    act_code: tuple[str, str] | None = None  # (code, display) in v3-ActCode

    def concept(self) -> dict[str, Any]:
        """A CodeableConcept in Verity's code system (and in v3-ActCode, if HL7 has a code)."""
        coding = [{"system": FINDING_SYSTEM, "code": str(self.code), "display": self.display}]
        if self.act_code:
            code, display = self.act_code
            coding.insert(0, {"system": V3_ACT_CODE, "code": code, "display": display})
        return {"coding": coding, "text": self.display}


# Imaging (issue 11): Verity's own vocabularies and profiles for the imaging write-back; the
# finding codes themselves are in FINDING_SYSTEM, next to the pill ones.
PROFILE_IMAGING_REPORT: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-imaging-report"
PROFILE_IMAGING_CHECK: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-imaging-check"
CHECK_OUTCOME_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/check-outcome"
IMAGING_REPORT_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/imaging-report"
IMAGING_FINDING_VALUESET: Final = f"{CANONICAL_BASE}/ValueSet/imaging-finding"
IMAGING_CONCLUSION_VALUESET: Final = f"{CANONICAL_BASE}/ValueSet/imaging-conclusion"

# HL7 terminology used by the imaging resources.
V2_0074: Final = "http://terminology.hl7.org/CodeSystem/v2-0074"  # diagnostic service section
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
V3_OBSERVATION_INTERPRETATION: Final = (
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
)
RADIOLOGY_SECTION: Final = {"system": V2_0074, "code": "RAD", "display": "Radiology"}
IMAGING_CATEGORY: Final = {"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}
ABNORMAL: Final = {"system": V3_OBSERVATION_INTERPRETATION, "code": "A", "display": "Abnormal"}
