"""Every code system, code and canonical URL Verity writes, in one place, with its source.

HL7 codes are only the ones published by HL7 (terminology.hl7.org, the AI Transparency on FHIR
IG); anything HL7 has no code for is in Verity's own code system, whose CodeSystem and
ValueSet resources live in `fhir_profiles/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from service.verify.results import Finding, Verdict

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
NDC_SYSTEM: Final = "http://hl7.org/fhir/sid/ndc"
RXNORM_SYSTEM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
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

DISCLAIMER: Final = (
    "AI-assisted check: this finding was produced automatically by Verity from a photo and has "
    "not been reviewed by a person. A pharmacist or nurse must confirm the medication against "
    "the order before it is given."
)


@dataclass(frozen=True)
class IssueKind:
    """One thing Verity reports, with its Verity code, its HL7 code (if one fits) and severity."""

    code: str
    display: str
    definition: str
    severity: str  # DetectedIssue.severity: high | moderate | low
    rank: int  # lower is reported first when a verification has several issues
    act_code: tuple[str, str] | None = None  # (code, display) in v3-ActCode


# v3-ActCode detected-issue codes (terminology.hl7.org CodeSystem-v3-ActCode; the first three are
# in _SupplyDetectedIssueCode, KEY206 in _ActAdministrativeRuleDetectedIssueCode):
#   NOTEQUIV  "not equivalent alert" (The therapy being performed is not sufficiently equivalent
#             to the therapy which was requested.)
#   FULFIL    "fulfillment alert" (The therapy being performed is in some way out of alignment
#             with the requested therapy.)
#   NOTACTN   "no longer actionable" (the request has expired, been fulfilled, stopped ...)
#   KEY206    "non-matching identification" (metadata of the identification does not match the
#             identification being verified)
# UNCERTAIN, NOT_IN_LIBRARY and NO_PILL_FOUND say "could not confirm", for which HL7 has no
# detected-issue code; they carry the Verity code only.
ISSUES: Final[dict[str, IssueKind]] = {
    k.code: k
    for k in (
        IssueKind(
            Finding.PATIENT_MISMATCH,
            "Patient does not match the order",
            "The patient given for the check is not the subject of the MedicationRequest.",
            "high",
            0,
            ("KEY206", "non-matching identification"),
        ),
        IssueKind(
            Verdict.MISMATCH,
            "Pill does not match the prescribed product",
            "A pill in the photo was identified with confidence as a product other than any "
            "product of the prescribed clinical drug.",
            "high",
            1,
            ("NOTEQUIV", "not equivalent alert"),
        ),
        IssueKind(
            Finding.ORDER_INACTIVE,
            "Order is not active",
            "The MedicationRequest is stopped, cancelled, completed, entered-in-error or "
            "otherwise not active.",
            "high",
            2,
            ("NOTACTN", "no longer actionable"),
        ),
        IssueKind(
            Finding.COUNT_MISMATCH,
            "Pill count differs from the ordered dose",
            "The number of pills in the photo differs from the dose quantity of the order.",
            "high",
            3,
            ("FULFIL", "fulfillment alert"),
        ),
        IssueKind(
            Verdict.UNCERTAIN,
            "Needs pharmacist review",
            "The pill could neither be confirmed as nor ruled out from the prescribed product.",
            "moderate",
            4,
        ),
        IssueKind(
            Verdict.NOT_IN_LIBRARY,
            "Prescribed product not in the reference library",
            "Verity has no reference for any product of the prescribed clinical drug, so it "
            "cannot check the pill.",
            "moderate",
            5,
        ),
        IssueKind(
            Verdict.NO_PILL_FOUND,
            "No pill found in the photo",
            "No pill could be found in the photo, so nothing was checked.",
            "moderate",
            6,
        ),
        IssueKind(
            Verdict.MATCH,
            "Pill matches the prescribed product",
            "Every pill in the photo was identified as a product of the prescribed clinical drug.",
            "low",
            7,
        ),
    )
}
