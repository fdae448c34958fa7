"""FolderSource: the StudySource protocol over a folder of DICOM files, on the real dataset."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pydicom
import pytest

from service.errors import DicomTooLarge, FileUnreadable, StudyNotInPacs, StudyTooLarge
from service.fhir.dicom_sources import FolderSource, StudySource
from tests.conftest import SHARED_DATA

STUDIES = SHARED_DATA / "studies"


def _study_uid(case: Path) -> str:
    study = json.loads((case / "fhir" / "ImagingStudy.json").read_text())
    (uid,) = [i["value"] for i in study["identifier"] if i["system"] == "urn:dicom:uid"]
    return str(uid).removeprefix("urn:oid:")


def _cases() -> list[Path]:
    cases = sorted(p for p in STUDIES.glob("dev-*") if (p / "dicom").is_dir())
    assert len(cases) == 47  # the dev set as documented: a missing folder fails, not skips
    return cases


async def test_every_case_reads_as_its_own_pacs() -> None:
    """Each case folder holds one study; the ImagingStudy's UID finds it and every file counts."""
    started = time.perf_counter()
    for case in _cases():
        source: StudySource = FolderSource(case / "dicom")
        series = await source.series(_study_uid(case))
        files = list((case / "dicom").glob("*.dcm"))
        assert sum(s.instances for s in series) == len(files), case.name
        assert source.skipped == 0  # type: ignore[attr-defined]
    assert time.perf_counter() - started < 10


async def test_whole_dataset_indexed_once_and_fast() -> None:
    started = time.perf_counter()
    source = FolderSource(STUDIES)
    first = _cases()[0]
    assert await source.series(_study_uid(first))
    elapsed = time.perf_counter() - started
    assert elapsed < 5, elapsed
    # csv / json / licence files are not DICOM: skipped and counted, never an error
    assert source.skipped > 0
    started = time.perf_counter()
    for case in _cases():
        assert await source.series(_study_uid(case))
    assert time.perf_counter() - started < 0.5  # the index is not rebuilt


async def test_series_metadata_retrieve_match_the_files() -> None:
    folder = STUDIES / "dev-001" / "dicom"  # two series, JPEG 2000 + explicit VR LE
    files = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in folder.glob("*.dcm")}
    study_uid = _study_uid(STUDIES / "dev-001")
    source = FolderSource(folder)
    series = await source.series(study_uid)
    assert {s.uid for s in series} == {ds.SeriesInstanceUID for ds in files.values()}
    assert {s.modality for s in series} == {"CT"}
    for s in series:
        (header,) = await source.metadata(study_uid, s.uid)
        path = next(p for p, ds in files.items() if ds.SOPInstanceUID == header.SOPInstanceUID)
        assert header.PatientID == files[path].PatientID
        assert "PixelData" not in header
        assert header.file_meta.TransferSyntaxUID == files[path].file_meta.TransferSyntaxUID
        data = await source.retrieve(study_uid, s.uid, header.SOPInstanceUID)
        assert data == path.read_bytes()


async def test_unknown_study_series_instance() -> None:
    case = STUDIES / "dev-001"
    source = FolderSource(case / "dicom")
    with pytest.raises(StudyNotInPacs):
        await source.series("1.2.826.0.1.3680043.8.498.1")
    series = await source.series(_study_uid(case))
    with pytest.raises(StudyNotInPacs):
        await source.metadata(_study_uid(case), "1.2.826.0.1.3680043.8.498.2")
    with pytest.raises(StudyNotInPacs):
        await source.retrieve(_study_uid(case), series[0].uid, "1.2.826.0.1.3680043.8.498.3")


async def test_non_dicom_files_are_skipped_and_counted(tmp_path: Path) -> None:
    case = STUDIES / "dev-041"
    for p in (case / "dicom").glob("*.dcm"):
        shutil.copy(p, tmp_path / p.stem)  # opaque names, no extension
    (tmp_path / "notes.txt").write_text("not DICOM")
    (tmp_path / "truncated.dcm").write_bytes(b"\0" * 10)
    no_uid = pydicom.dcmread(next((case / "dicom").glob("*.dcm")))
    del no_uid.SOPInstanceUID
    no_uid.save_as(tmp_path / "no-sop-uid.dcm", enforce_file_format=False)
    source = FolderSource(tmp_path)
    (series,) = await source.series(_study_uid(case))
    assert series.instances == 9
    assert source.skipped == 3


async def test_limits(tmp_path: Path) -> None:
    case = STUDIES / "dev-041"  # 9 instances
    source = FolderSource(case / "dicom", max_instances=8)
    with pytest.raises(StudyTooLarge):
        await source.series(_study_uid(case))
    source = FolderSource(case / "dicom", max_instance_bytes=1024)
    (series,) = await source.series(_study_uid(case))
    (first, *_) = await source.metadata(_study_uid(case), series.uid)
    with pytest.raises(DicomTooLarge):
        await source.retrieve(_study_uid(case), series.uid, first.SOPInstanceUID)
    with pytest.raises(FileUnreadable):
        await FolderSource(tmp_path / "missing").series(_study_uid(case))
