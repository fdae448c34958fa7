"""The imaging-study protocol (`verity evaluate studies DIR`) on the labelled dataset format of
../shared/data/README.md (studies section): every `archive/` study is enrolled as the PACS
history (its fingerprints, under its own patient); then each case is checked on its own,
reading its three FHIR files and its `dicom/` folder as the PACS, through the product's own
check path, and never becomes history for another case (checked, not recorded)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config import Settings
from service.errors import DatasetInvalid
from service.evaluation.harness import Query, latency, run_protocol
from service.fhir.orders import StaticOrderSource
from service.models.image_embedder import load_image_embedder
from service.store.pool import Connect
from service.verify.imaging.results import FindingCode, ImagingVerification
from service.verify.imaging.study import StudyOrder
from service.workflows.imaging.check import check_study, enrol_study
from service.workflows.imaging.read import STUDY_TYPE, read_study
from service.workflows.imaging.sources import folder_source

FHIR_FILES = ("Patient.json", "ServiceRequest.json", "ImagingStudy.json")
# The assigning authority of the dataset's hospital (README, studies section: "Ours is
# HOSPITAL.EXAMPLE / http://hospital.example/mrn"), used when none is configured.
DATASET_ISSUERS = ["HOSPITAL.EXAMPLE"]


def with_dataset_issuers(settings: Settings) -> Settings:
    """The settings a dataset is checked under: its hospital's issuer unless one is set."""
    if settings.imaging.patient_id_issuers:
        return settings
    imaging = settings.imaging.model_copy(update={"patient_id_issuers": DATASET_ISSUERS})
    return settings.model_copy(update={"imaging": imaging})


@dataclass(frozen=True)
class StudyCase:
    key: str
    folder: Path
    expected: frozenset[str]


async def read_case(folder: Path) -> StudyOrder:
    """The EHR's view of a dataset study folder (`fhir/` with its three resources)."""
    source, ref = StaticOrderSource.from_files(
        [folder / "fhir" / name for name in FHIR_FILES], STUDY_TYPE
    )
    return await read_study(source, ref)


def read_cases(dataset: Path) -> list[StudyCase]:
    """cases.csv: case_id, expected codes separated by spaces (empty: a clean study)."""
    path = dataset / "cases.csv"
    if not path.is_file():
        raise DatasetInvalid(f"{dataset} has no cases.csv: not a studies dataset")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"case_id", "expected"} <= set(rows[0]):
        raise DatasetInvalid("cases.csv needs the columns case_id and expected")
    return [
        StudyCase(r["case_id"], dataset / r["case_id"], frozenset((r["expected"] or "").split()))
        for r in rows
    ]


def archive_folders(dataset: Path) -> list[Path]:
    archive = dataset / "archive"
    if not archive.is_dir():
        return []
    return sorted(p for p in archive.iterdir() if (p / "fhir").is_dir())


class StudyProtocol:
    """Enrol the archive, check every case, score the reported codes per finding code."""

    def __init__(self, dataset: Path, settings: Settings) -> None:
        self.dataset = dataset
        self.settings = settings
        self.cases = read_cases(dataset)
        self.enrolled = 0
        self.embedder = load_image_embedder(settings)

    async def prepare(self, connect: Connect) -> None:
        for folder in archive_folders(self.dataset):
            order = await read_case(folder)
            source = folder_source(folder / "dicom", self.settings.pacs)
            self.enrolled += await enrol_study(
                self.settings, order, source, connect, embedder=self.embedder
            )

    def queries(self) -> Iterator[Query[StudyCase]]:
        for case in self.cases:
            yield Query(case.key, " ".join(sorted(case.expected)), case)

    async def ask(self, connect: Connect, item: StudyCase) -> ImagingVerification:
        order = await read_case(item.folder)
        source = folder_source(item.folder / "dicom", self.settings.pacs)
        checked = await check_study(self.settings, order, source, connect, embedder=self.embedder)
        return checked.verification

    def row(self, query: Query[StudyCase], answer: ImagingVerification | None) -> dict[str, Any]:
        return {
            "expected": sorted(query.item.expected),
            "found": sorted(f.value for f in answer.findings) if answer else [],
            "outcome": answer.outcome if answer else None,
            "tiers": sorted(answer.tiers) if answer else [],
        }

    def score(self, rows: list[dict[str, Any]], details: bool) -> dict[str, Any]:
        return {
            **score_cases(rows),
            **tier_shares(rows),
            "archive_images": self.enrolled,
            **latency(rows),
            **({"rows": rows} if details else {}),
        }


def score_cases(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The protocol's figures: clean pass rate, fault detection, exact rate, per code."""
    clean = [r for r in rows if not r["expected"]]
    faulty = [r for r in rows if r["expected"]]
    content = FindingCode.CONTENT_MISMATCH.value
    without_content = [r for r in rows if content not in r["expected"]]
    per_code: dict[str, dict[str, Any]] = {}
    for code in FindingCode:
        c = code.value
        expected = sum(c in r["expected"] for r in rows)
        found = sum(c in r["expected"] and c in r["found"] for r in rows)
        false_alarms = sum(c in r["found"] and c not in r["expected"] for r in rows)
        if expected or false_alarms:
            per_code[c] = {
                "expected": expected,
                "found": found,
                "recall": round(found / expected, 4) if expected else None,
                "false_alarms": false_alarms,
            }
    return {
        "cases": len(rows),
        "clean_cases": len(clean),
        "clean_pass_rate": _rate(sum(not r["found"] for r in clean), len(clean)),
        "fault_detection_rate": _rate(
            sum(set(r["expected"]) <= set(r["found"]) for r in faulty), len(faulty)
        ),
        "exact_rate": _rate(sum(r["expected"] == r["found"] for r in rows), len(rows)),
        "exact_rate_without_content": _rate(
            sum(r["expected"] == r["found"] for r in without_content), len(without_content)
        ),
        "per_code": per_code,
    }


def tier_shares(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of studies that reached each tier, and of clean ones routed to a person."""
    clean = [r for r in rows if not r["expected"]]
    tiers = sorted({t for r in rows for t in r.get("tiers", [])})
    return {
        "tier_share": {
            t: _rate(sum(t in r.get("tiers", []) for r in rows), len(rows)) for t in tiers
        },
        "uncertain_rate": _rate(sum(r.get("outcome") == "UNCERTAIN" for r in rows), len(rows)),
        "clean_uncertain_rate": _rate(
            sum(r.get("outcome") == "UNCERTAIN" for r in clean), len(clean)
        ),
    }


def _rate(n: int, total: int) -> float | None:
    return round(n / total, 4) if total else None


async def evaluate_studies(dataset: Path, settings: Settings, *, details: bool) -> dict[str, Any]:
    """`verity evaluate studies DIR`: the protocol on a throwaway database."""
    if not dataset.is_dir():
        raise DatasetInvalid(f"{dataset} is not a folder")
    settings = with_dataset_issuers(settings)
    return await run_protocol(StudyProtocol(dataset, settings), settings, details=details)
