import pytest

from service.errors import OrderUnsupported
from service.verify.pills.catalog import (
    Ingredient,
    clinical_drug_key,
    parse_label_ingredients,
    same_clinical_drug,
)
from service.verify.pills.orders import (
    NDC,
    RXNORM,
    contained_medication,
    ndc_product_code,
    read_order,
)


def _request(**kw):
    base = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "ndc,expected",
    [
        ("00093-7155-98", "000937155"),
        ("0093-7155-98", "000937155"),
        ("00093-155-98", "000930155"),
        ("00093715598", "000937155"),
        ("93-7155-98", None),
        ("abc", None),
    ],
)
def test_ndc_product_code(ndc, expected):
    assert ndc_product_code(ndc) == expected


def test_clinical_drug_key_ignores_order_case_and_unit_spelling():
    a = clinical_drug_key([Ingredient("Levothyroxine", "112 ug")])
    b = clinical_drug_key([Ingredient("LEVOTHYROXINE", "112 mcg")])
    assert a == b == "LEVOTHYROXINE 112 mcg"
    combo = parse_label_ingredients("A / B", "METFORMIN 500 mg / PIOGLITAZONE 15 mg")
    assert clinical_drug_key(combo) == clinical_drug_key(
        [Ingredient("pioglitazone", "15 mg"), Ingredient("metformin", "500.0 mg")]
    )
    assert same_clinical_drug("X 1 mg", "X 1 mg", "tablet", None)
    assert not same_clinical_drug("X 1 mg", "X 1 mg", "tablet", "capsule")
    assert not same_clinical_drug(None, None)


def test_codeable_concept_with_codes_and_dose():
    req = _request(
        medicationCodeableConcept={
            "coding": [
                {
                    "system": RXNORM,
                    "code": "861007",
                    "display": "metformin hydrochloride 500 MG Oral Tablet",
                },
                {"system": NDC, "code": "00093-1048-01"},
            ]
        },
        dosageInstruction=[{"doseAndRate": [{"doseQuantity": {"value": 2, "unit": "tablet"}}]}],
    )
    order = read_order(req, None)
    assert order.active and order.patient_ref == "Patient/p1" and order.dose_count == 2
    assert order.drug.rxcuis == ["861007"] and order.drug.ndc_products == ["000931048"]
    assert order.drug.clinical_drug == "METFORMIN HYDROCHLORIDE 500 mg"
    assert order.drug.dose_form == "tablet"


def test_contained_medication_with_ingredients():
    med = {
        "resourceType": "Medication",
        "id": "m",
        "code": {"text": "Zestoretic"},
        "form": {"text": "Tablet"},
        "ingredient": [
            {
                "itemCodeableConcept": {"text": "Lisinopril anhydrous"},
                "strength": {"numerator": {"value": 20, "unit": "mg"}, "denominator": {"value": 1}},
            },
            {
                "itemCodeableConcept": {"text": "Hydrochlorothiazide"},
                "strength": {"numerator": {"value": 25, "unit": "mg"}, "denominator": {"value": 1}},
            },
        ],
    }
    req = _request(status="stopped", medicationReference={"reference": "#m"}, contained=[med])
    order = read_order(req, contained_medication(req))
    assert not order.active
    assert order.drug.clinical_drug == "HYDROCHLOROTHIAZIDE 25 mg / LISINOPRIL ANHYDROUS 20 mg"


def test_orders_that_cannot_be_verified():
    with pytest.raises(OrderUnsupported):
        read_order(_request(), None)
    with pytest.raises(OrderUnsupported):
        read_order(_request(medicationCodeableConcept={"text": "the blue one"}), None)
    with pytest.raises(OrderUnsupported):
        read_order({"resourceType": "Patient"}, None)
    with pytest.raises(OrderUnsupported):
        contained_medication(_request(medicationReference={"reference": "#missing"}))
