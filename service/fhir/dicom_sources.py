"""Where a study's DICOM comes from: the PACS over DICOMweb (`fhir/dicomweb.py`) or a folder
(dry runs, the evaluation, the demo). Both answer the same `StudySource` protocol, so the
workflow, the checks and the evaluation never know which one they read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydicom import Dataset


@dataclass(frozen=True)
class SeriesInfo:
    """One series as the PACS lists it (QIDO-RS)."""

    uid: str
    modality: str | None
    instances: int  # NumberOfSeriesRelatedInstances


class StudySource(Protocol):
    """A study's series, instance headers (no pixels) and whole instances, by UID only."""

    async def series(self, study_uid: str) -> list[SeriesInfo]:
        """The study's series with their instance counts; StudyNotInPacs if it is unknown."""
        ...

    async def metadata(self, study_uid: str, series_uid: str) -> list[Dataset]:
        """Every instance header of one series (WADO-RS metadata), pixel data left out."""
        ...

    async def retrieve(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """One instance as a DICOM Part 10 file in its stored transfer syntax, bounded by the
        configured byte limit (DicomTooLarge over it)."""
        ...
