"""CT series for the benchmark, built from real slices: n consistent instances, real pixels,
and the FHIR that lists them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fhir.resources.R4B import get_fhir_model_class

from service.demo.series import default_ct_slices, write_ct_series
from service.demo.study_files import ABDOMEN_CT
from tests.conftest import SHARED_DATA


def _check_series(paths: list[Path], folder: Path, n: int) -> list[pydicom.Dataset]:
    headers = [pydicom.dcmread(p) for p in paths]
    assert len(headers) == n and all(p.parent == folder / "dicom" for p in paths)
    assert [int(ds.InstanceNumber) for ds in headers] == list(range(1, n + 1))
    assert len({ds.SOPInstanceUID for ds in headers}) == n
    assert (
        len({(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID) for ds in headers})
        == 1
    )
    assert len({tuple(ds.ImageOrientationPatient) for ds in headers}) == 1
    z = [float(ds.ImagePositionPatient[2]) for ds in headers]
    assert np.allclose(np.diff(z), float(headers[0].SpacingBetweenSlices), atol=0.01)
    resources = {p.stem: json.loads(p.read_text()) for p in (folder / "fhir").glob("*.json")}
    for data in resources.values():
        get_fhir_model_class(data["resourceType"]).model_validate(data)
    ims, pat, sr = resources["ImagingStudy"], resources["Patient"], resources["ServiceRequest"]
    assert ims["numberOfInstances"] == n
    assert [i["uid"] for i in ims["series"][0]["instance"]] == [ds.SOPInstanceUID for ds in headers]
    assert ims["identifier"][0]["value"] == f"urn:oid:{headers[0].StudyInstanceUID}"
    assert {ds.PatientID for ds in headers} == {pat["identifier"][0]["value"]}
    assert {ds.AccessionNumber for ds in headers} == {sr["identifier"][0]["value"]}
    return headers


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_twelve_consistent_slices_from_the_real_default_slice(tmp_path: Path) -> None:
    (source_path,) = default_ct_slices()
    source = pydicom.dcmread(source_path)
    paths = write_ct_series(tmp_path, 12)
    headers = _check_series(paths, tmp_path, 12)
    assert {ds.BodyPartExamined for ds in headers} == {"HEAD"}
    real = _hu(source)
    slices = [_hu(ds) for ds in headers]
    for hu in slices:
        assert hu.shape == real.shape
        assert np.abs(hu - real).mean() < 5.0  # the real pixels plus a little noise
    assert not any(np.array_equal(a, b) for a, b in zip(slices, slices[1:], strict=False))


def test_interpolates_between_real_neighbouring_slices(tmp_path: Path) -> None:
    sources = sorted((SHARED_DATA / "dicom" / "ct_series").glob("*.dcm"))
    assert len(sources) == 3
    real = sorted(
        (pydicom.dcmread(p) for p in sources), key=lambda ds: float(ds.ImagePositionPatient[2])
    )
    paths = write_ct_series(tmp_path, 5, source_slices=sources, seed=7, exam=ABDOMEN_CT)
    headers = _check_series(paths, tmp_path, 5)
    assert float(headers[0].SpacingBetweenSlices) == pytest.approx(1.0)
    first, middle = _hu(real[0]), (_hu(real[0]) + _hu(real[1])) / 2
    assert np.abs(_hu(headers[0]) - first).mean() < 5.0
    assert np.abs(_hu(headers[1]) - middle).mean() < 5.0  # half way between two real slices
    assert np.abs(_hu(headers[1]) - first).mean() > np.abs(_hu(headers[1]) - middle).mean()


def test_other_sizes_and_seeds_are_other_studies(tmp_path: Path) -> None:
    a = pydicom.dcmread(write_ct_series(tmp_path / "a", 2)[0])
    b = pydicom.dcmread(write_ct_series(tmp_path / "b", 3)[0])
    c = pydicom.dcmread(write_ct_series(tmp_path / "c", 2, seed=1)[0])
    assert len({a.StudyInstanceUID, b.StudyInstanceUID, c.StudyInstanceUID}) == 3
    again = write_ct_series(tmp_path / "a2", 2)
    assert again[0].read_bytes() == (tmp_path / "a" / "dicom" / again[0].name).read_bytes()


def test_sources_without_a_body_part_need_the_exam(tmp_path: Path) -> None:
    sources = sorted((SHARED_DATA / "dicom" / "ct_series").glob("*.dcm"))
    with pytest.raises(ValueError, match="exam="):
        write_ct_series(tmp_path, 2, source_slices=sources)
    with pytest.raises(ValueError):
        write_ct_series(tmp_path, 0)
