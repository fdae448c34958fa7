"""Where a study's DICOM comes from: the PACS over DICOMweb (`fhir/dicomweb.py`) or a folder
(dry runs, the evaluation, the demo). Both answer the same `StudySource` protocol, so the
workflow, the checks and the evaluation never know which one they read."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from service.config import PacsSettings
from service.errors import DicomTooLarge, FileUnreadable, StudyNotInPacs, StudyTooLarge

log = logging.getLogger(__name__)


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


@dataclass
class _FolderInstance:
    path: Path
    header: Dataset  # read with stop_before_pixels


class FolderSource:
    """The `StudySource` protocol over a folder of DICOM files (dry runs, evaluation, demo).

    The folder (and its subfolders) is indexed once, on first use, by reading each file's
    header only; file names mean nothing. A file that is not DICOM, or lacks the study, series
    or SOP Instance UID, is skipped and counted in `skipped` (one INFO log line with the count,
    no names). Reading is local, but still bounded like the PACS: `max_instances` per study and
    `max_instance_bytes` per file.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_instances: int = PacsSettings.model_fields["max_instances"].default,
        max_instance_bytes: int = PacsSettings.model_fields["max_instance_bytes"].default,
    ) -> None:
        self.root = root
        self.max_instances = max_instances
        self.max_instance_bytes = max_instance_bytes
        self.skipped = 0
        self._studies: dict[str, dict[str, list[_FolderInstance]]] | None = None
        self._lock = asyncio.Lock()

    async def _index(self) -> dict[str, dict[str, list[_FolderInstance]]]:
        async with self._lock:
            if self._studies is None:
                self._studies = await asyncio.to_thread(self._read_headers)
        return self._studies

    def _read_headers(self) -> dict[str, dict[str, list[_FolderInstance]]]:
        """Study UID -> series UID -> instances, from every readable DICOM file."""
        if not self.root.is_dir():
            raise FileUnreadable("the DICOM folder does not exist or is not a folder")
        studies: dict[str, dict[str, list[_FolderInstance]]] = {}
        skipped = 0
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            try:
                header = dcmread(path, stop_before_pixels=True)
                study, series = header.StudyInstanceUID, header.SeriesInstanceUID
                header.SOPInstanceUID  # noqa: B018 - required, as in a PACS
            except (InvalidDicomError, AttributeError, OSError, ValueError, EOFError):
                skipped += 1
                continue
            studies.setdefault(str(study), {}).setdefault(str(series), []).append(
                _FolderInstance(path, header)
            )
        self.skipped = skipped
        if skipped:
            log.info("DICOM folder: %d files are not usable DICOM and were skipped", skipped)
        return studies

    async def _study(self, study_uid: str) -> dict[str, list[_FolderInstance]]:
        study = (await self._index()).get(study_uid)
        if study is None:
            raise StudyNotInPacs("the DICOM folder holds no such study")
        return study

    async def series(self, study_uid: str) -> list[SeriesInfo]:
        """The study's series with counts of the files that hold them."""
        study = await self._study(study_uid)
        total = sum(len(instances) for instances in study.values())
        if total > self.max_instances:
            raise StudyTooLarge(f"study has {total} instances; the limit is {self.max_instances}")
        return [
            SeriesInfo(uid, str(items[0].header.get("Modality") or "") or None, len(items))
            for uid, items in study.items()
        ]

    async def metadata(self, study_uid: str, series_uid: str) -> list[Dataset]:
        """The headers read at indexing (file meta included), one per file of the series."""
        items = (await self._study(study_uid)).get(series_uid)
        if items is None:
            raise StudyNotInPacs("the DICOM folder holds no such series")
        return [item.header for item in items]

    async def retrieve(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """The file's bytes as stored, refused over the byte limit before reading."""
        items = (await self._study(study_uid)).get(series_uid, [])
        path = next((i.path for i in items if i.header.SOPInstanceUID == sop_uid), None)
        if path is None:
            raise StudyNotInPacs("the DICOM folder holds no such instance")
        if path.stat().st_size > self.max_instance_bytes:
            raise DicomTooLarge(f"instance over the {self.max_instance_bytes}-byte limit")
        return await asyncio.to_thread(path.read_bytes)
