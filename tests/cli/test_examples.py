"""The sample orders of docs/examples parse as valid FHIR and read as the clinical drug of the
dataset product whose photos they are meant to be tried with."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B import get_fhir_model_class

from service.evaluation.pills import read_dataset
from service.fhir.orders import StaticOrderSource
from service.verify.pills.catalog import clinical_drug_key
from service.verify.pills.orders import ndc_product_code
from service.workflows.pills.verify import load_order
from tests.conftest import REPO_ROOT, SHARED_DATA

EXAMPLES = REPO_ROOT / "docs" / "examples"
# file -> (order reference, dataset product, RxCUIs, NDC product codes, dose form, dose count)
SAMPLES = {
    "medication-request-rxnorm.json": (
        "MedicationRequest/example-simvastatin-40", "ndc_00093-7155-98", ["198211"], [],
        "tablet", 1),
    "medication-request-contained-medication.json": (
        "MedicationRequest/example-loperamide-2", "ndc_00093-0311-01", [], ["000930311"],
        "capsule", 1),
    "bundle.json": (
        "MedicationRequest/example-trazodone-50", "ndc_53489-0510-01", [], ["534890510"],
        "tablet", 1),
}  # fmt: skip


def test_every_sample_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_sample_order_reads_as_the_right_clinical_drug(name):
    ref, product_id, rxcuis, ndc_products, form, dose = SAMPLES[name]
    doc = json.loads((EXAMPLES / name).read_text())
    get_fhir_model_class(doc["resourceType"]).model_validate(doc)  # structurally valid FHIR

    source, order_ref = StaticOrderSource.from_file(EXAMPLES / name)
    assert order_ref == ref
    _, order = await load_order(source, order_ref)
    product = {d.product.id: d.product for d in read_dataset(SHARED_DATA / "pills")}[product_id]
    assert order.drug.clinical_drug == clinical_drug_key(product.ingredients)
    assert order.drug.clinical_drug is not None
    assert order.drug.rxcuis == rxcuis
    assert order.drug.ndc_products == ndc_products
    if ndc_products:  # the NDC is the dataset product's own
        assert ndc_products == [ndc_product_code(n) for n in product.ndcs]
    assert order.drug.dose_form == form and order.dose_count == dose
    assert order.active and order.patient_ref == "Patient/example"
