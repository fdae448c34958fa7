import copy
from datetime import date, datetime, timedelta, timezone

import pytest

from service.errors import ImagingStudyUnsupported
from service.verify.imaging.study import (
    EndpointInfo,
    contained_endpoints,
    endpoint_info,
    read_study_order,
)
from tests.verify.imaging_cases import fhir


def _resources(case):
    return fhir(case, "ImagingStudy"), fhir(case, "Patient"), fhir(case, "ServiceRequest")


def test_real_case_with_mcode_laterality():
    study, patient, request = _resources("dev-031")
    order = read_study_order(study, patient, request)
    assert order.study_ref == "ImagingStudy/is-ff271efb203b"
    assert order.study_uid == "2.25.171359637860842107388569149303955242525"
    assert order.patient_ref == "Patient/pat-98626f98d38b"
    assert order.order_ref == "ServiceRequest/sr-f73e357f5244"
    assert (order.mrn, order.mrn_system) == ("60511610", "http://hospital.example/mrn")
    assert (order.family, order.given) == ("Alvarez", ("Omar",))
    assert order.gender == "male" and order.birth_date == date(1988, 6, 23)
    assert order.accession == "A11900462"
    assert (order.procedure_code, order.procedure_text) == ("24905-2", "MR Shoulder left")
    assert order.modalities == ("MR",)
    assert order.body_site == "16982005" and order.laterality == "L"
    assert order.ordered_at == datetime(2025, 5, 8, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert (order.number_of_series, order.number_of_instances) == (1, 1)
    [series] = order.series
    assert series.uid == "2.25.244945399183806973612915607328385052147"
    assert (series.modality, series.number, series.laterality) == ("MR", 1, "L")
    assert series.body_site == "16982005" and series.number_of_instances == 1
    assert series.instance_uids == ("2.25.35282437497528240005045720288385725978",)
    assert order.endpoints == (EndpointInfo("urn:verity:pacs", "dicom-wado-rs"),)


def test_several_series():
    order = read_study_order(*_resources("dev-001"))
    assert len(order.series) == 2 and order.number_of_series == 2
    assert {s.modality for s in order.series} == {"CT"}
    assert order.given == ("Pavel", "Rose")


def test_no_study_uid_is_unsupported_and_says_no_values():
    study, patient, request = _resources("dev-031")
    study["identifier"] = [i for i in study["identifier"] if i.get("system") != "urn:dicom:uid"]
    with pytest.raises(ImagingStudyUnsupported) as err:
        read_study_order(study, patient, request)
    assert "A11900462" not in err.value.detail and "2.25" not in err.value.detail


def test_malformed_study_uid_is_unsupported():
    study, patient, request = _resources("dev-031")
    study["identifier"][0]["value"] = "urn:oid:not-a-uid"
    with pytest.raises(ImagingStudyUnsupported):
        read_study_order(study, patient, request)


def test_without_service_request_falls_back_to_the_imaging_study():
    study, patient, _ = _resources("dev-031")
    order = read_study_order(study, patient, None)
    assert order.accession == "A11900462"  # the ImagingStudy's ACSN identifier
    assert order.procedure_code == "24905-2" and order.procedure_text == "MR Shoulder"
    assert order.body_site == "16982005"  # the series' bodySite
    assert order.laterality == "L"  # the series' laterality
    assert order.ordered_at == datetime(2025, 5, 8, 9, 39, 55, tzinfo=timezone(timedelta(hours=1)))


def test_request_accession_wins_and_right_side():
    study, patient, request = _resources("dev-031")
    request = copy.deepcopy(request)
    request["identifier"][0]["value"] = "A1"
    ext = request["bodySite"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]
    ext["code"] = "24028007"
    order = read_study_order(study, patient, request)
    assert order.accession == "A1" and order.laterality == "R"


def test_occurrence_period_and_date_only():
    study, patient, request = _resources("dev-031")
    del request["occurrenceDateTime"]
    request["occurrencePeriod"] = {"start": "2025-05-09"}
    assert read_study_order(study, patient, request).ordered_at == date(2025, 5, 9)


def test_patient_name_official_first_and_partial_birth_date():
    study, patient, request = _resources("dev-031")
    patient["name"] = [
        {"use": "maiden", "family": "Old", "given": ["Omar"]},
        {"use": "official", "family": "New", "given": ["Omar", "J"]},
    ]
    patient["birthDate"] = "1988-06"
    order = read_study_order(study, patient, request)
    assert (order.family, order.given, order.birth_date) == ("New", ("Omar", "J"), None)
    patient["name"] = [{"family": "Only", "given": ["A"]}]
    assert read_study_order(study, patient, request).family == "Only"


def test_missing_patient():
    study, _, request = _resources("dev-031")
    order = read_study_order(study, None, request)
    assert order.mrn is None and order.family is None and order.gender is None


def test_endpoints_contained_and_referenced():
    study, patient, request = _resources("dev-031")
    study["endpoint"].append({"reference": "Endpoint/pacs-2"})
    study["endpoint"].append({"reference": "#missing"})
    assert contained_endpoints(study) == [EndpointInfo("urn:verity:pacs", "dicom-wado-rs")]
    referenced = endpoint_info(
        {
            "resourceType": "Endpoint",
            "address": "http://pacs.example/dicom-web",
            "connectionType": [{"coding": [{"code": "dicom-qido-rs"}]}],  # R5 shape
        }
    )
    assert referenced == EndpointInfo("http://pacs.example/dicom-web", "dicom-qido-rs")
    order = read_study_order(study, patient, request, endpoints=[referenced])
    assert order.endpoints == (EndpointInfo("urn:verity:pacs", "dicom-wado-rs"), referenced)
    assert endpoint_info({"resourceType": "Endpoint"}) == EndpointInfo("", None)
