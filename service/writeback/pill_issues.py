"""What the pill domain writes in words and codes: its issue table, disclaimer and Device text.

The shared write-back modules carry no pill words; they take these as parameters.
"""

from __future__ import annotations

from typing import Final

from service.verify.pills.results import Finding, Verdict
from service.writeback import codes
from service.writeback.codes import IssueKind

NDC_SYSTEM: Final = "http://hl7.org/fhir/sid/ndc"
RXNORM_SYSTEM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"

DISCLAIMER: Final = (
    "AI-assisted check: this finding was produced automatically by Verity from a photo and has "
    "not been reviewed by a person. A pharmacist or nurse must confirm the medication against "
    "the order before it is given."
)
DEVICE_PURPOSE: Final = "checks dispensed pills against the prescribed order"
# AIKind (AI Transparency IG): a CNN embedding, a trained projection head, OCR and a calibrated
# rule-based fusion of their evidence; the same photo always gives the same answer.
DEVICE_KINDS: Final = (codes.AI_KIND_HYBRID, codes.AI_KIND_DETERMINISTIC)

# v3-ActCode codes of the R4 DetectedIssue category value set (detectedissue-category: the
# is-a descendants of _AdministrationDetectedIssueCode, _ActSuppliedItemDetectedIssueCode and
# _SupplyDetectedIssueCode; binding strength preferred), all three under _SupplyDetectedIssueCode:
#   FULFIL    "fulfillment alert" (The therapy being performed is in some way out of alignment
#             with the requested therapy.): medication for a patient who is not the order's
#             subject. KEY206 "non-matching identification" would say it better but it is in
#             _ActAdministrativeDetectedIssueCode, outside the value set.
#   NOTEQUIV  "not equivalent alert" (The therapy being performed is not sufficiently equivalent
#             to the therapy which was requested.)
#   NOTACTN   "no longer actionable" (the request has expired, been fulfilled, stopped ...)
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
            ("FULFIL", "fulfillment alert"),
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
