"""What a MedicationRequest asks for, read from its FHIR R4 JSON: status, patient, the drug
(RxNorm / NDC codes, ingredients and strengths, or text) and the dose count. Pure; no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from service.errors import OrderUnsupported
from service.verify.pills.catalog import Ingredient, clinical_drug_key

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
ACTIVE_STATUSES = frozenset({"active"})
_TEXT_INGREDIENT = re.compile(
    r"([A-Za-z][A-Za-z\- ]*?)\s+(\d+(?:\.\d+)?)\s*(mg|mcg|ug|µg|g)\b", re.IGNORECASE
)
_FORMS = ("tablet", "capsule", "caplet", "lozenge")


@dataclass
class OrderedDrug:
    rxcuis: list[str] = field(default_factory=list)
    ndc_products: list[str] = field(default_factory=list)  # 9-digit labeler+product codes
    ingredients: list[Ingredient] = field(default_factory=list)
    dose_form: str | None = None
    text: str | None = None

    @property
    def clinical_drug(self) -> str | None:
        return clinical_drug_key(self.ingredients)


@dataclass
class OrderInfo:
    status: str | None
    patient_ref: str | None
    drug: OrderedDrug
    dose_count: int | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


def ndc_product_code(ndc: str) -> str | None:
    """Labeler + product part of an NDC (9 digits), from 10-digit hyphenated or 11-digit forms."""
    raw = ndc.strip()
    if "-" in raw:
        parts = raw.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return None
        labeler, product, _ = parts
        widths = {(4, 4): ("0" + labeler, product), (5, 3): (labeler, "0" + product),
                  (5, 4): (labeler, product)}  # fmt: skip
        fixed = widths.get((len(labeler), len(product)))
        return "".join(fixed) if fixed else None
    digits = raw.replace(" ", "")
    return digits[:9] if len(digits) == 11 and digits.isdigit() else None


def _codings(concept: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((concept or {}).get("coding", []))


def _strength(ingredient: dict[str, Any]) -> str | None:
    num = (ingredient.get("strength") or {}).get("numerator") or {}
    if "value" not in num:
        return None
    return f"{num['value']:g} {num.get('unit') or num.get('code') or ''}".strip()


def drug_from_concept(concept: dict[str, Any]) -> OrderedDrug:
    """Codes and text of a medicationCodeableConcept (or Medication.code)."""
    drug = OrderedDrug(text=concept.get("text"))
    for c in _codings(concept):
        code = str(c.get("code", "")).strip()
        if c.get("system") == RXNORM and code:
            drug.rxcuis.append(code)
        elif c.get("system") == NDC and (product := ndc_product_code(code)):
            drug.ndc_products.append(product)
        drug.text = drug.text or c.get("display")
    if drug.text:
        drug.ingredients = [
            Ingredient(m.group(1).strip(), f"{m.group(2)} {m.group(3)}")
            for m in _TEXT_INGREDIENT.finditer(drug.text)
        ]
        lowered = drug.text.lower()
        drug.dose_form = next((f for f in _FORMS if f in lowered), None)
    return drug


def drug_from_medication(medication: dict[str, Any]) -> OrderedDrug:
    """A Medication resource: its code, and its ingredients with strengths when given."""
    drug = drug_from_concept(medication.get("code") or {})
    listed = []
    for ing in medication.get("ingredient", []):
        concept = ing.get("itemCodeableConcept") or {}
        name = concept.get("text") or next(
            (c.get("display") for c in _codings(concept) if c.get("display")), None
        )
        if name:
            listed.append(Ingredient(name, _strength(ing)))
    if listed:
        drug.ingredients = listed
    form = medication.get("form") or {}
    form_text = form.get("text") or next((c.get("display") for c in _codings(form)), None)
    if form_text:
        drug.dose_form = next((f for f in _FORMS if f in form_text.lower()), form_text.lower())
    return drug


def contained_medication(request: dict[str, Any]) -> dict[str, Any] | None:
    """The Medication a `#id` medicationReference points at, if contained."""
    ref = (request.get("medicationReference") or {}).get("reference", "")
    if not ref.startswith("#"):
        return None
    for res in request.get("contained", []):
        if res.get("resourceType") == "Medication" and res.get("id") == ref[1:]:
            return dict(res)
    raise OrderUnsupported(f"contained medication {ref} is missing from the MedicationRequest")


def dose_count(request: dict[str, Any]) -> int | None:
    """Units per administration when the first dosage states a whole number of them."""
    for dosage in request.get("dosageInstruction", [])[:1]:
        for dr in dosage.get("doseAndRate", [])[:1]:
            value = (dr.get("doseQuantity") or {}).get("value")
            if isinstance(value, int | float) and float(value).is_integer() and value > 0:
                return int(value)
    return None


def read_order(request: dict[str, Any], medication: dict[str, Any] | None) -> OrderInfo:
    """Everything verification needs from the order; `medication` is the resolved reference."""
    if request.get("resourceType") != "MedicationRequest":
        raise OrderUnsupported("the referenced resource is not a MedicationRequest")
    if medication is not None:
        drug = drug_from_medication(medication)
    elif "medicationCodeableConcept" in request:
        drug = drug_from_concept(request["medicationCodeableConcept"])
    else:
        raise OrderUnsupported("the MedicationRequest names no medication")
    if not (drug.rxcuis or drug.ndc_products or drug.ingredients):
        raise OrderUnsupported(
            "the order's medication has no RxNorm or NDC code and no ingredient with strength"
        )
    return OrderInfo(
        status=request.get("status"),
        patient_ref=(request.get("subject") or {}).get("reference"),
        drug=drug,
        dose_count=dose_count(request),
    )
