"""What the imaging check pages say, from the job and the recorded result: progress in words
for each state, compared values in a radiographer's words, which thumbnails are kept."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np

from service.store.jobs import JobRow
from service.verify.imaging.headers import InstanceHeader
from service.workflows.imaging.pixels import Canvas
from service.workflows.imaging.review import check_row, progress_text, review_of
from service.workflows.imaging.thumbnails import Thumbnail, choose

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JOB = JobRow(
    id="00000000-0000-0000-0000-000000000001", created_at=NOW, updated_at=NOW, state="queued",
    study_ref="ImagingStudy/1", patient_ref=None, order_ref=None, caller_subject=None,
    caller_client_id=None, caller_scopes=[], attempts=0, lease_token=None, progress={},
    outcome=None, findings=[], error=None,
)  # fmt: skip


def job(**kw: object) -> JobRow:
    return dataclasses.replace(JOB, **kw)  # type: ignore[arg-type]


def test_progress_moves_through_the_tiers_to_done() -> None:
    counts = {"instances_found": 5, "instances_fetched": 2, "instances_checked": 1}
    assert progress_text(job()) == ("Waiting for a worker to start the check.", False)
    assert progress_text(job(state="running"))[0].startswith("Reading the study")
    text, done = progress_text(job(state="running", progress=counts))
    assert "2 of 5 fetched, 1 decoded" in text and not done
    text, done = progress_text(job(state="running", progress={**counts, "instances_fetched": 5}))
    assert "comparing them with the archive" in text and not done
    text, done = progress_text(job(state="done", outcome="FAILED"))
    assert done and text.startswith("Finished: Do not send this study")
    text, done = progress_text(job(state="failed", error={"title": "PACS unavailable"}))
    assert done and "PACS unavailable" in text


def test_compared_values_are_spelled_out_for_side_and_body_site() -> None:
    side = check_row({"code": "LATERALITY_MISMATCH", "outcome": "failed", "dicom": ["R"],
                      "expected": ["L"], "summary": "s", "severity": "high"})  # fmt: skip
    assert (side.dicom, side.ehr, side.outcome_words) == ("R (right)", "L (left)", "Problem found")
    site = check_row({"code": "BODY_PART_MISMATCH", "outcome": "passed", "dicom": ["LEG"],
                      "expected": ["30021000"]})  # fmt: skip
    assert site.ehr == "Lower leg (SNOMED CT 30021000)" and site.name == "Body part"


def test_review_lists_failed_and_uncertain_checks_as_findings() -> None:
    result = {
        "outcome": "FAILED", "fhir": {"status": "queued"},
        "checks": [{"code": "MODALITY_MISMATCH", "outcome": "passed"},
                   {"code": "CONTENT_MISMATCH", "outcome": "uncertain"},
                   {"code": "DUPLICATE_IMAGE", "outcome": "failed"}],
        "thumbnails": [{"number": 1, "series_number": 2, "instance_number": 3, "frame": 0,
                        "modality": "CT", "body_part": "HEAD", "laterality": None}],
    }  # fmt: skip
    r = review_of(job(state="done"), result)
    assert [f.code for f in r.findings] == ["CONTENT_MISMATCH", "DUPLICATE_IMAGE"]
    assert r.needs_decision and r.fhir_status == "queued"
    assert r.thumbnails == [Thumbnail(1, 2, 3, 0, "CT", "HEAD", None)]


def test_one_thumbnail_per_instance_in_series_order_up_to_the_limit() -> None:
    def canvas(sop: str, series: int, number: int, frame: int) -> Canvas:
        h = InstanceHeader(sop, f"s{series}", "st", instance_number=number, series_number=series,
                           modality="MR")  # fmt: skip
        return Canvas(h, frame, np.zeros((256, 256, 3), dtype=np.uint8))

    canvases = [canvas("c", 2, 1, 0), canvas("b", 1, 2, 2), canvas("b", 1, 2, 0),
                canvas("a", 1, 1, 0)]  # fmt: skip
    chosen = choose(canvases, 2)
    assert [(t.number, t.series_number, t.instance_number, t.frame) for t, _ in chosen] == [
        (1, 1, 1, 0), (2, 1, 2, 0)]  # fmt: skip
    assert len(choose(canvases, 12)) == 3 and choose(canvases, 0) == []


def test_a_dicom_person_name_reads_as_a_name_and_agreeing_values_say_so() -> None:
    from service.workflows.imaging.review import check_row, value_words

    assert value_words("DEMOGRAPHICS_MISMATCH", "ALVAREZ^ROSA^LEE") == "ALVAREZ, ROSA LEE"
    row = check_row({"code": "DEMOGRAPHICS_MISMATCH", "outcome": "passed",
                     "expected": ["ALVAREZ^ROSA", "1962-03-14"]})  # fmt: skip
    assert row.dicom == "the same" and row.ehr == "ALVAREZ, ROSA, 1962-03-14"
    failed = check_row({"code": "MODALITY_MISMATCH", "outcome": "failed", "expected": ["CR"]})
    assert failed.dicom == "—"
