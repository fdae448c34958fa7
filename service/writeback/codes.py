"""The code systems, codes and canonical URLs every domain writes with, with their source.

HL7 codes are only the ones published by HL7 (terminology.hl7.org, the AI Transparency on FHIR
IG); anything HL7 has no code for is in Verity's own code system, whose CodeSystem and
ValueSet resources live in `fhir_profiles/`. Each domain's issue table (its codes, words and
disclaimer) lives in its own module, e.g. `pill_issues.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from service.config import DEFAULT_CANONICAL_BASE

# Verity's canonical base as built into its code (the default of
# VERITY_WRITEBACK__CANONICAL_BASE); `bundle.transaction` rebases what it writes to the configured
# base, and fhir_profiles/ is built with the same one (see docs/fhir.md).
CANONICAL_BASE: Final = DEFAULT_CANONICAL_BASE
FINDING_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/verification-finding"
FINDING_VALUESET: Final = f"{CANONICAL_BASE}/ValueSet/verification-finding"
DETECTED_ISSUE_CODE_VALUESET: Final = f"{CANONICAL_BASE}/ValueSet/detectedissue-code"
PROFILE_DETECTED_ISSUE: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-detectedissue"
PROFILE_PROVENANCE: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-provenance"
PROFILE_DEVICE: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-ai-device"
PROFILE_MODEL_CARD: Final = f"{CANONICAL_BASE}/StructureDefinition/verity-model-card"

# HL7 terminology (THO).
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_OBSERVATION_VALUE: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
V3_DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_PARTICIPANT_TYPE: Final = (
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
)
URI_IDENTIFIER_SYSTEM: Final = "urn:ietf:rfc:3986"

# HL7 AI Transparency on FHIR IG (hl7.fhir.uv.aitransparency), pinned: sushi-config.yaml of
# github.com/HL7/aitransparency-ig at commit 805d2a78ab41 (2026-08-06), version 1.0.0-current
# (the build after the 1.0.0-ballot publication). Canonicals are the IG's: `Id:` of each FSH item.
AI_TRANSPARENCY_IG_VERSION: Final = "1.0.0-current"
AI_TRANSPARENCY_IG_COMMIT: Final = "805d2a78ab410e1afdc0fde85370510abefe58d1"
AI_TRANSPARENCY_IG: Final = "http://hl7.org/fhir/uv/aitransparency"
PROFILE_IG_AI_DEVICE: Final = f"{AI_TRANSPARENCY_IG}/StructureDefinition/AI-Device"
PROFILE_IG_AI_PROVENANCE: Final = f"{AI_TRANSPARENCY_IG}/StructureDefinition/AI-Provenance"
PROFILE_IG_AI_MODEL_CARD: Final = f"{AI_TRANSPARENCY_IG}/StructureDefinition/AI-ModelCard"
AI_DEVICE_TYPE_SYSTEM: Final = f"{AI_TRANSPARENCY_IG}/CodeSystem/AIdeviceTypeCS"
AI_INPUTS_SYSTEM: Final = f"{AI_TRANSPARENCY_IG}/CodeSystem/AIinputsCS"
AI_KIND_EXTENSION: Final = f"{AI_TRANSPARENCY_IG}/StructureDefinition/aitransparency.AIKind"
AI_CONFIDENCE_EXTENSION: Final = f"{AI_TRANSPARENCY_IG}/StructureDefinition/AIconfidence"
MODEL_CARD_EXTENSION: Final = (
    f"{AI_TRANSPARENCY_IG}/StructureDefinition/aitransparency.modelCardDescription"
)

AIAST: Final = {
    "system": V3_OBSERVATION_VALUE,
    "code": "AIAST",
    "display": "Artificial Intelligence asserted",
}
# Fixed `(exactly)` by the IG on Device.type and on the AI agent's Provenance.agent.role: the
# Coding must be exactly {system, code}, so no display and no CodeableConcept.text.
AI_DEVICE_TYPE: Final = {"system": AI_DEVICE_TYPE_SYSTEM, "code": "Artificial-Intelligence"}
# DocumentReference.type of AI-ModelCard (fixed exactly) and its Markdown-format category slice.
AI_MODEL_CARD_TYPE: Final = {"system": AI_INPUTS_SYSTEM, "code": "AIModelCard"}
AI_MODEL_CARD_MARKDOWN: Final = {
    "system": AI_INPUTS_SYSTEM,
    "code": "AIModelCardMarkdownFormat",
    "display": "Markdown Format",
}


def ai_kind(code: str, display: str) -> dict[str, str]:
    """A Coding of AIdeviceTypeVS (AIdeviceTypeCS without its root) for the AIKind extension."""
    return {"system": AI_DEVICE_TYPE_SYSTEM, "code": code, "display": display}


# Specific AIKind codes (selectable concepts of AIdeviceTypeCS; the abstract grouping codes
# AI-By-* are not used). Each domain picks the ones that describe its Device.
AI_KIND_HYBRID: Final = ai_kind("Hybrid-Models", "Hybrid Models")
AI_KIND_DEEP_LEARNING: Final = ai_kind("Deep-Learning-Models", "Deep Learning Models")
AI_KIND_RULE_BASED: Final = ai_kind("Rule-Based-Systems", "Rule-Based Systems")
AI_KIND_DETERMINISTIC: Final = ai_kind("Deterministic-AI", "Deterministic AI")
AI_KIND_QUALITY_CONTROL: Final = ai_kind("Medical-Quality-Control", "Medical Quality Control")
AI_KIND_IMAGING_DATA: Final = ai_kind("AI-for-Medical-Imaging-Data", "AI for Medical Imaging Data")


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
