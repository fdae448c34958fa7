"""The EHR side of a generated study: Patient, ServiceRequest and ImagingStudy as R4 JSON, with
the conventions of ../shared/data/README.md (MR and ACSN identifier types, urn:dicom:uid, a
contained dicom-wado-rs Endpoint at urn:verity:pacs, relative references)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.demo.study_files import Order

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ACCESSION_SYSTEM = "http://hospital.example/accession"
PACS_PLACEHOLDER = "urn:verity:pacs"


def opaque_id(prefix: str, *parts: object) -> str:
    """A resource id that says nothing about its content."""
    return prefix + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12]


def resource_ids(order: Order) -> tuple[str, str, str]:
    """Opaque ids of the order's Patient, ServiceRequest and ImagingStudy."""
    return (opaque_id("pat-", order.key), opaque_id("sr-", order.key), opaque_id("is-", order.key))


def patient(order: Order) -> dict[str, Any]:
    who = order.patient
    mr = {"system": V2_0203, "code": "MR", "display": "Medical record number"}
    return {
        "resourceType": "Patient",
        "id": resource_ids(order)[0],
        "identifier": [{"use": "usual", "type": {"coding": [mr]},
                        "system": "http://hospital.example/mrn", "value": who.mrn}],
        "active": True,
        "name": [{"use": "official", "family": who.family, "given": list(who.given)}],
        "gender": who.gender,
        "birthDate": who.birth_date.isoformat(),
    }  # fmt: skip


def _accession(order: Order) -> dict[str, Any]:
    acsn = {"system": V2_0203, "code": "ACSN", "display": "Accession ID"}
    return {"type": {"coding": [acsn]}, "system": ACCESSION_SYSTEM, "value": order.accession}


def _exam_code(order: Order) -> dict[str, Any]:
    exam = order.exam
    coding = {"system": LOINC, "code": exam.loinc, "display": exam.loinc_display}
    return {"coding": [coding], "text": exam.text}


def _body_site(order: Order) -> dict[str, str]:
    return {"system": SCT, "code": order.exam.snomed, "display": order.exam.snomed_display}


def service_request(order: Order) -> dict[str, Any]:
    pat, sr, _ = resource_ids(order)
    imaging = {"system": SCT, "code": "363679005", "display": "Imaging"}
    authored = order.ordered.replace(hour=10, minute=15, second=0)
    return {
        "resourceType": "ServiceRequest",
        "id": sr,
        "identifier": [_accession(order)],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [imaging]}],
        "code": _exam_code(order),
        "subject": {"reference": f"Patient/{pat}"},
        "occurrenceDateTime": order.ordered.isoformat(),
        "authoredOn": authored.isoformat(),
        "bodySite": [{"coding": [_body_site(order)], "text": order.exam.snomed_display}],
    }


def imaging_study(order: Order, instances: Sequence[tuple[int, str]]) -> dict[str, Any]:
    """`instances` = (InstanceNumber, SOP Instance UID) of what the EHR believes is stored."""
    pat, sr, study = resource_ids(order)
    exam = order.exam
    modality = {"system": DCM, "code": exam.modality}
    sop_class = {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{exam.sop_class}"}
    endpoint = {
        "resourceType": "Endpoint",
        "id": "pacs",
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs",
        },
        "payloadType": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
            "code": "DICOM",
        }]}],
        "address": PACS_PLACEHOLDER,
    }  # fmt: skip
    series = {
        "uid": order.series_uid,
        "number": 1,
        "modality": modality,
        "description": exam.series_description,
        "numberOfInstances": len(instances),
        "bodySite": _body_site(order),
        "instance": [{"uid": uid, "sopClass": sop_class, "number": n} for n, uid in instances],
    }
    return {
        "resourceType": "ImagingStudy",
        "id": study,
        "contained": [endpoint],
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{order.study_uid}"},
                       _accession(order)],
        "status": "available",
        "modality": [modality],
        "subject": {"reference": f"Patient/{pat}"},
        "started": order.performed.isoformat(),
        "basedOn": [{"reference": f"ServiceRequest/{sr}"}],
        "endpoint": [{"reference": "#pacs"}],
        "numberOfSeries": 1,
        "numberOfInstances": len(instances),
        "procedureCode": [_exam_code(order)],
        "description": exam.text,
        "series": [series],
    }  # fmt: skip
