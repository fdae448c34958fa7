import warnings
from dataclasses import replace
from datetime import date

import pytest
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

from service.verify.imaging.headers import InstanceHeader, from_dataset
from tests.verify.imaging_cases import dataset, one_file


def _header(case: str) -> InstanceHeader:
    return from_dataset(dataset(one_file(case)))


def test_part10_single_frame_ct():
    h = _header("dev-046")
    assert h.modality == "CT" and h.body_part == "CHEST"
    assert h.patient_id == "76438420" and h.patient_name == "ABBOTT^FELIX^ROSE^^"
    assert h.issuer == "HOSPITAL.EXAMPLE" and h.issuer_universal == "http://hospital.example/mrn"
    assert h.birth_date == date(1971, 6, 26) and h.sex == "M"
    assert h.study_date == date(2025, 7, 15) and h.accession == "A60407239"
    assert h.position == pytest.approx((-158.135803, -179.035797, -75.699997))
    assert h.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert h.frames == 1 and h.instance_number == 1 and h.series_number == 1
    assert h.rows and h.columns and h.transfer_syntax == ExplicitVRLittleEndian
    assert h.sop_uid and h.series_uid and h.study_uid and h.sop_class


@pytest.mark.parametrize("case", ["dev-046", "dev-005", "dev-003", "dev-034", "dev-015"])
def test_dicomweb_json_reads_the_same_as_part10(case):
    ds = dataset(one_file(case))
    from_json = Dataset.from_json(ds.to_json_dict())
    assert from_dataset(from_json) == replace(from_dataset(ds), transfer_syntax=None)


def test_issuer_with_qualifiers_and_without_issuer():
    other = _header("dev-003")
    assert other.issuer == "NORTHSIDE.EXAMPLE"
    assert other.issuer_universal == "http://northside-clinic.example/patient-id"
    none = _header("dev-018")
    assert none.issuer is None and none.issuer_universal is None
    assert none.patient_name == "Novak^Kenji^M"  # mixed case kept as stored


def test_issuer_without_qualifiers():
    ds = dataset(one_file("dev-001"))
    assert from_dataset(ds).issuer == "HOSPITAL.EXAMPLE"
    assert from_dataset(ds).issuer_universal is None


def test_enhanced_multiframe_geometry_and_anatomy_from_functional_groups():
    h = _header("dev-005")  # enhanced CT, 2 frames, no top-level geometry
    assert h.frames == 2
    assert h.position == pytest.approx((99.5, -301.5, -159.0))  # first frame's PlanePosition
    assert h.orientation == pytest.approx((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0))  # shared group
    assert h.anatomic_regions == ("T-A0100",)  # FrameAnatomySequence AnatomicRegionSequence
    assert h.laterality == "U"  # FrameLaterality
    assert h.body_part == "HEAD"


def test_anatomic_region_sequence_without_body_part():
    h = _header("dev-034")
    assert h.body_part is None and h.anatomic_regions == ("12738006",)


def test_laterality_then_image_laterality():
    assert _header("dev-015").laterality == "R"
    ds = Dataset()
    ds.ImageLaterality = "L"
    assert from_dataset(ds).laterality == "L"
    ds.Laterality = "R"
    assert from_dataset(ds).laterality == "R"


def _part10_with_raw_values(values: dict[str, tuple[str, str]]) -> Dataset:
    """A dataset as dcmread leaves it: undecoded raw elements, converted on first access."""
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    for keyword, (vr, raw) in values.items():
        tag = Tag(keyword)
        data = raw.encode() + (b" " if len(raw) % 2 else b"")
        ds[tag] = RawDataElement(tag, vr, len(data), data, 0, False, True)
    return ds


def test_malformed_values_become_none_without_warnings():
    ds = _part10_with_raw_values(
        {
            "InstanceNumber": ("IS", "abc"),
            "StudyDate": ("DA", "20251345"),
            "PatientBirthDate": ("DA", "garbage"),
            "ImagePositionPatient": ("DS", "1.0\\x"),
            "ImageOrientationPatient": ("DS", "1\\0\\0"),
            "PatientSex": ("CS", "X"),
            "NumberOfFrames": ("IS", "0"),
            "Laterality": ("CS", "Q"),
        }
    )
    h = from_dataset(ds)  # pytest turns any warning into an error
    assert h.sop_uid == "1.2.3"
    assert h.instance_number is None and h.study_date is None and h.birth_date is None
    assert h.position is None and h.orientation is None and h.sex is None
    assert h.frames == 1 and h.laterality is None


def test_malformed_dicomweb_json():
    payload = {
        "00080018": {"vr": "UI", "Value": ["1.2.3"]},
        "00100010": {"vr": "PN"},
        "00080020": {"vr": "DA", "Value": ["2025-01-02"]},
        "00080050": {"vr": "SH", "Value": [""]},
        "00200032": {"vr": "DS", "Value": [1.0, 2.0]},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = Dataset.from_json(payload)
    h = from_dataset(ds)
    assert h.sop_uid == "1.2.3" and h.accession is None
    assert h.patient_name is None and h.study_date is None and h.position is None


def test_empty_dataset():
    assert from_dataset(Dataset()) == InstanceHeader(sop_uid="", series_uid="", study_uid="")


def test_acr_nema_date_form_and_pn_groups():
    ds = _part10_with_raw_values({"StudyDate": ("DA", "2025.01.02")})
    ds.PatientName = "Yamada^Tarou=山田^太郎"
    h = from_dataset(ds)
    assert h.study_date == date(2025, 1, 2) and h.patient_name == "Yamada^Tarou"
