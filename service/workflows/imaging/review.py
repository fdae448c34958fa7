"""An imaging verification as a radiographer reads it: its progress while it runs, then the
outcome in words, the table of checks (what the DICOM headers say beside what the EHR says),
the findings with their evidence, and what the thumbnails show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.errors import RouteNotFound
from service.store import jobs, verification_images
from service.store import verifications as audit
from service.store.jobs import JobRow
from service.store.pool import Connect
from service.verify.imaging.bodyparts import REGIONS, region_for_code
from service.verify.imaging.results import FindingCode
from service.workflows.imaging.thumbnails import Thumbnail

CHECK_NAMES = {
    FindingCode.PATIENT_ID_MISMATCH: "Patient ID and issuer",
    FindingCode.DEMOGRAPHICS_MISMATCH: "Patient name, birth date and sex",
    FindingCode.MIXED_PATIENTS: "One patient in every image",
    FindingCode.ACCESSION_MISMATCH: "Accession number",
    FindingCode.MODALITY_MISMATCH: "Modality",
    FindingCode.BODY_PART_MISMATCH: "Body part",
    FindingCode.LATERALITY_MISMATCH: "Side (laterality)",
    FindingCode.STUDY_INCOMPLETE: "All listed series and images in the PACS",
    FindingCode.SLICE_GAP: "No slice missing in a series",
    FindingCode.DUPLICATE_IMAGE: "Not an image of another patient",
    FindingCode.UNREADABLE_IMAGE: "Every image readable",
    FindingCode.DATE_OUT_OF_WINDOW: "Study date near the order date",
    FindingCode.CONTENT_MISMATCH: "What the pixels show matches the order",
}
OUTCOME_WORDS = {
    "passed": "Agrees",
    "failed": "Problem found",
    "uncertain": "Unsure: a person should look",
    "could_not_check": "Could not be checked",
    "not_applicable": "Not applicable",
}
HEADLINES = {
    "PASSED": "The images agree with the order and the patient.",
    "FAILED": "Do not send this study for reading as it is: a check found a problem.",
    "UNCERTAIN": "Verity is unsure about this study: look at the images before it is read.",
    "INCOMPLETE": "Some checks could not be run: the study was not fully verified.",
}
NEEDS_DECISION = frozenset({"FAILED", "UNCERTAIN", "INCOMPLETE"})
SIDES = {"R": "R (right)", "L": "L (left)", "B": "B (both sides)", "U": "U (unpaired)"}


def value_words(code: str, value: str) -> str:
    """A compared value as a radiographer reads it: SNOMED CT body sites with their region,
    DICOM sides spelled out; other values as the header or the EHR gives them."""
    if code == FindingCode.LATERALITY_MISMATCH:
        return SIDES.get(value, value)
    if code == FindingCode.BODY_PART_MISMATCH and (region := region_for_code(value)):
        return f"{REGIONS[region].meaning} (SNOMED CT {value})"
    if code == FindingCode.DEMOGRAPHICS_MISMATCH and "^" in value:  # a DICOM person name
        family, _, given = value.partition("^")
        return f"{family}, {given.replace('^', ' ').strip()}".strip(", ")
    return value


@dataclass(frozen=True)
class CheckRow:
    """One row of the table of checks."""

    code: str
    name: str
    dicom: str  # what the DICOM headers (or pixels) say
    ehr: str  # what the EHR order / ImagingStudy / Patient says
    outcome: str  # passed, failed, ...
    outcome_words: str
    summary: str
    severity: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class ImagingReview:
    """What the result page shows of a finished verification."""

    job: JobRow
    outcome: str
    headline: str
    checks: list[CheckRow]
    findings: list[CheckRow]  # failed or uncertain checks, in check order
    thumbnails: list[Thumbnail]
    fhir_status: str | None

    @property
    def needs_decision(self) -> bool:
        return self.outcome in NEEDS_DECISION


def check_row(check: dict[str, Any]) -> CheckRow:
    code = str(check.get("code"))
    outcome = str(check.get("outcome"))
    try:
        name = CHECK_NAMES[FindingCode(code)]
    except ValueError:
        name = code
    ehr = ", ".join(value_words(code, v) for v in check.get("expected") or ()) or "—"
    dicom = ", ".join(value_words(code, v) for v in check.get("dicom") or ())
    if not dicom:  # a check that passed keeps only the EHR's values: the DICOM ones agreed
        dicom = "the same" if outcome == "passed" and ehr != "—" else "—"
    return CheckRow(
        code=code, name=name, outcome=outcome, dicom=dicom, ehr=ehr,
        outcome_words=OUTCOME_WORDS.get(outcome, outcome), summary=str(check.get("summary") or ""),
        severity=str(check.get("severity") or ""), evidence=dict(check.get("evidence") or {}),
    )  # fmt: skip


def review_of(job: JobRow, result: dict[str, Any]) -> ImagingReview:
    """The page's view of a recorded verification (the audit row's result)."""
    rows = [check_row(c) for c in result.get("checks") or []]
    outcome = str(result.get("outcome") or job.outcome or "")
    return ImagingReview(
        job=job, outcome=outcome, headline=HEADLINES.get(outcome, outcome), checks=rows,
        findings=[r for r in rows if r.outcome in ("failed", "uncertain")],
        thumbnails=[Thumbnail.from_json(t) for t in result.get("thumbnails") or []],
        fhir_status=(result.get("fhir") or {}).get("status"),
    )  # fmt: skip


async def load(connect: Connect, verification_id: str) -> tuple[JobRow, ImagingReview | None]:
    """The job and, once it is done, its review (UnknownVerification if there is no such job)."""
    async with connect() as conn:
        job = await jobs.get(conn, verification_id)
        if job.state != "done":
            return job, None
        row = await audit.get(conn, job.id)
    return job, review_of(job, row.result)


def progress_text(job: JobRow) -> tuple[str, bool]:
    """The job's state in words (and whether it has ended), from the counts the worker reports:
    the tier reached follows from them (listing, pixels, archive and content comparison)."""
    p = job.progress or {}
    found, fetched = int(p.get("instances_found") or 0), int(p.get("instances_fetched") or 0)
    checked = int(p.get("instances_checked") or 0)
    if job.state == "done":
        return f"Finished: {HEADLINES.get(job.outcome or '', job.outcome or '')}", True
    if job.state == "failed":
        title = (job.error or {}).get("title") or "an error"
        return f"The check could not finish: {title}.", True
    if job.state == "queued":
        waited = f" (attempt {job.attempts + 1})" if job.attempts else ""
        return f"Waiting for a worker to start the check{waited}.", False
    if found == 0:
        return "Reading the study from the EHR and listing it in the PACS.", False
    if fetched < found:
        return (f"Checking images: {fetched} of {found} fetched, {checked} decoded and "
                f"fingerprinted; the header checks are done."), False  # fmt: skip
    return (f"All {found} images fetched ({checked} decoded); comparing them with the archive "
            f"and the reference images."), False  # fmt: skip


async def thumbnail(
    connect: Connect, verification_id: str, number: int
) -> tuple[str, bytes] | None:
    async with connect() as conn:
        try:
            image = await verification_images.get(conn, verification_id, f"image-{number}")
        except RouteNotFound:
            return None
    return image.media_type, image.data
