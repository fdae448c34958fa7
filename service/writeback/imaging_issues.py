"""What the imaging domain writes in words and codes: its finding table, the report's conclusion
codes, the check outcomes, its disclaimer and its Device text.

The shared write-back modules carry no imaging words; they take these as parameters. The finding
codes are the contract of `../shared/data/README.md` (studies section); their CodeSystem and
ValueSets live in `fhir_profiles/` and a test keeps them equal to this table.
"""

from __future__ import annotations

from typing import Any, Final

from service.verify.imaging.results import FindingCode, Outcome
from service.writeback import codes
from service.writeback.codes import IssueKind

DISCLAIMER: Final = (
    "AI-assisted check: this was produced automatically by Verity by comparing the DICOM study "
    "in the PACS with the EHR's order and patient, and has not been reviewed by a person. It is "
    "not a reading of the images; a radiologist or technologist must confirm any finding before "
    "the study is reported or used."
)
DEVICE_PURPOSE: Final = "checks imaging studies in the PACS against the order and the patient"
# AIKind (AI Transparency IG): rules over DICOM headers and pixel fingerprints that find defects
# in medical images and their filing; deterministic.
DEVICE_KINDS: Final = (
    codes.AI_KIND_RULE_BASED,
    codes.AI_KIND_QUALITY_CONTROL,
    codes.AI_KIND_IMAGING_DATA,
    codes.AI_KIND_DETERMINISTIC,
)
# What each rule-based component is, for the model card Verity writes for it (these have no
# card file: no trained weights).
MODEL_NOTES: Final = {
    "verity-imaging-checks": "rule-based checks of the DICOM headers of a study against the "
    "EHR's order and patient (identity, demographics, mixed patients, accession, modality, body "
    "part by DICOM CID 4031 and SNOMED CT, laterality, dates, completeness, slice continuity); "
    "no trained weights. Source: service/verify/imaging/ in the Verity release named above.",
    "verity-pixel-fingerprint": "a DCT perceptual fingerprint of representative frames, "
    "compared with the fingerprints of other patients' studies in the archive to find the same "
    "pixels filed twice; no trained weights. Source: service/vision/dicom/fingerprint.py.",
}

# Findings about who or which order the study belongs to: always `high` on the DetectedIssue,
# whatever severity the check proposed (a wrong-patient study is never a moderate problem).
IDENTITY: Final = frozenset(
    {
        FindingCode.PATIENT_ID_MISMATCH,
        FindingCode.DEMOGRAPHICS_MISMATCH,
        FindingCode.MIXED_PATIENTS,
        FindingCode.ACCESSION_MISMATCH,
    }
)


# No HL7 code: the R4 DetectedIssue category value set (detectedissue-category, binding
# preferred) holds only medication administration and supply codes (is-a descendants of
# _AdministrationDetectedIssueCode, _ActSuppliedItemDetectedIssueCode, _SupplyDetectedIssueCode).
# KEY206 "non-matching identification" fits the identity findings but is outside it, and none
# of the set is about a wrong patient, modality, body part, side, date, a missing or duplicated
# image or unreadable pixels; so every imaging finding carries only its Verity code.
def _kind(code: FindingCode, display: str, definition: str, severity: str, rank: int) -> IssueKind:
    return IssueKind(code, display, definition, severity, rank)


ISSUES: Final[dict[str, IssueKind]] = {
    k.code: k
    for k in (
        _kind(
            FindingCode.PATIENT_ID_MISMATCH,
            "Patient ID in the images does not match the patient",
            "A DICOM PatientID differs from the patient's MRN, or IssuerOfPatientID names "
            "another assigning authority.",
            "high",
            0,
        ),
        _kind(
            FindingCode.MIXED_PATIENTS,
            "Study holds images of more than one patient",
            "The instances of the study carry more than one patient identity.",
            "high",
            1,
        ),
        _kind(
            FindingCode.DEMOGRAPHICS_MISMATCH,
            "Patient name, birth date or sex in the images does not match",
            "The DICOM PatientID agrees with the MRN, but PatientName, PatientBirthDate or "
            "PatientSex disagrees with the EHR's patient.",
            "high",
            2,
        ),
        _kind(
            FindingCode.ACCESSION_MISMATCH,
            "Accession number does not match the order",
            "A DICOM AccessionNumber differs from the accession (ACSN) of the order.",
            "high",
            3,
        ),
        _kind(
            FindingCode.DUPLICATE_IMAGE,
            "Image also belongs to another patient's study",
            "An image is identical or nearly identical (re-encoded, re-windowed, resized) to an "
            "image the archive holds for another patient, or reuses its SOP Instance UID.",
            "high",
            4,
        ),
        _kind(
            FindingCode.LATERALITY_MISMATCH,
            "Side in the images differs from the ordered side",
            "DICOM Laterality or ImageLaterality differs from the side of the order.",
            "high",
            5,
        ),
        _kind(
            FindingCode.MODALITY_MISMATCH,
            "Modality differs from the order",
            "A DICOM Modality differs from the modality ordered and declared by the EHR.",
            "moderate",
            6,
        ),
        _kind(
            FindingCode.BODY_PART_MISMATCH,
            "Body part differs from the order",
            "BodyPartExamined (or AnatomicRegionSequence) is not compatible with the order's "
            "body site (DICOM CID 4031 to SNOMED CT).",
            "moderate",
            7,
        ),
        _kind(
            FindingCode.CONTENT_MISMATCH,
            "Image content does not look like the ordered exam",
            "Header and order agree, but the pixels are not of the ordered modality or body part.",
            "moderate",
            8,
        ),
        _kind(
            FindingCode.STUDY_INCOMPLETE,
            "Study in the PACS is incomplete",
            "The PACS holds fewer series or instances than the ImagingStudy lists.",
            "moderate",
            9,
        ),
        _kind(
            FindingCode.SLICE_GAP,
            "Slice missing from a series",
            "A cross-sectional series has an InstanceNumber gap together with a jump of the "
            "position along the slice normal.",
            "moderate",
            10,
        ),
        _kind(
            FindingCode.UNREADABLE_IMAGE,
            "Image cannot be read",
            "A frame cannot be decoded (truncated or corrupt encapsulated frame, short native "
            "Pixel Data) or decodes to a constant image.",
            "moderate",
            11,
        ),
        _kind(
            FindingCode.DATE_OUT_OF_WINDOW,
            "Study date is far from the order date",
            "StudyDate is more than the allowed number of days before or after the date of the "
            "order.",
            "moderate",
            12,
        ),
    )
}

# The report's conclusionCode when no check failed (Verity codes: a SNOMED CT "no abnormality
# detected" would read as a clinical reading of the images, which this is not).
NO_FINDING: Final = IssueKind(
    "NO_FINDING",
    "No problem found with the study",
    "Every check of the imaging study that applied passed: it matches the order and the patient.",
    "low",
    20,
)
CHECK_INCOMPLETE: Final = IssueKind(
    "CHECK_INCOMPLETE",
    "No problem found, but not every check could be made",
    "No check of the imaging study failed, but at least one could not be made (for example no "
    "decodable pixels to fingerprint), so the study is not fully verified.",
    "low",
    21,
)
CHECK_UNCERTAIN: Final = IssueKind(
    "CHECK_UNCERTAIN",
    "No problem found, but a check is unsure: a person decides",
    "No check of the imaging study failed, but at least one saw evidence it cannot settle (for "
    "example pixels that may not show the ordered body part), so a person must look.",
    "moderate",
    22,
)
CONCLUSIONS: Final[dict[str, IssueKind]] = {
    k.code: k for k in (NO_FINDING, CHECK_INCOMPLETE, CHECK_UNCERTAIN)
}

# Observation.code text: which check an Observation reports (its code is the finding it guards).
CHECK_NAMES: Final[dict[str, str]] = {
    FindingCode.PATIENT_ID_MISMATCH: "Patient ID check",
    FindingCode.MIXED_PATIENTS: "Single-patient check",
    FindingCode.DEMOGRAPHICS_MISMATCH: "Demographics check",
    FindingCode.ACCESSION_MISMATCH: "Accession number check",
    FindingCode.DUPLICATE_IMAGE: "Duplicate image check",
    FindingCode.LATERALITY_MISMATCH: "Laterality check",
    FindingCode.MODALITY_MISMATCH: "Modality check",
    FindingCode.BODY_PART_MISMATCH: "Body part check",
    FindingCode.CONTENT_MISMATCH: "Image content check",
    FindingCode.STUDY_INCOMPLETE: "Completeness check",
    FindingCode.SLICE_GAP: "Slice continuity check",
    FindingCode.UNREADABLE_IMAGE: "Readability check",
    FindingCode.DATE_OUT_OF_WINDOW: "Study date check",
}

# Observation.valueCodeableConcept: the check's outcome (no HL7 code system says passed / not
# applicable / could not check of a check; v3-ObservationInterpretation grades a value instead).
OUTCOMES: Final[dict[Outcome, tuple[str, str, str]]] = {
    Outcome.PASSED: ("passed", "Passed", "The check was made and found no problem."),
    Outcome.FAILED: ("failed", "Failed", "The check was made and found the problem it guards."),
    Outcome.NOT_APPLICABLE: (
        "not-applicable",
        "Not applicable",
        "The check does not apply to this study or order (e.g. laterality when the order has "
        "no side).",
    ),
    Outcome.COULD_NOT_CHECK: (
        "could-not-check",
        "Could not check",
        "The check applies but could not be made (e.g. no decodable pixels).",
    ),
    Outcome.UNCERTAIN: (
        "uncertain",
        "Uncertain",
        "The check was made but its evidence is not clear either way; a person decides.",
    ),
}

# Observation.component.code: the role of a compared value (Verity's imaging-report system).
REPORT_CODE: Final = ("imaging-study-verification", "Imaging study verification")
COMPONENTS: Final[dict[str, tuple[str, str]]] = {
    "dicom": ("dicom-value", "Value found in the DICOM"),
    "ehr": ("ehr-value", "Value the EHR gives"),
    "instance": ("sop-instance", "SOP Instance UID implicated"),
    "evidence": ("evidence", "Other evidence the check used"),
}


def outcome_concept(outcome: Outcome) -> dict[str, Any]:
    """Observation.valueCodeableConcept for a check's outcome."""
    code, display, _ = OUTCOMES[outcome]
    return {
        "coding": [{"system": codes.CHECK_OUTCOME_SYSTEM, "code": code, "display": display}],
        "text": display,
    }


def component_code(role: str) -> dict[str, Any]:
    """Observation.component.code for one role of a compared value."""
    code, display = COMPONENTS[role]
    return {"coding": [{"system": codes.IMAGING_REPORT_SYSTEM, "code": code, "display": display}]}


def verity_concept(kind: IssueKind) -> dict[str, Any]:
    """A finding or conclusion in Verity's code system only (DiagnosticReport.conclusionCode: a
    detected-issue code is not a conclusion)."""
    coding = {"system": codes.FINDING_SYSTEM, "code": str(kind.code), "display": kind.display}
    return {"coding": [coding], "text": kind.display}


def check_code(code: FindingCode) -> dict[str, Any]:
    """Observation.code: the finding the check guards (Verity code only: an HL7 detected-issue
    code on a passed check would read as an issue)."""
    return {**verity_concept(ISSUES[code]), "text": CHECK_NAMES[code]}
