"""What counts as "the same clinical drug": same ingredients and strengths (and dose form
when both sides state one). Pure functions; no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPACES = re.compile(r"\s+")
_NUMBER_UNIT = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Zµ/]+)")
_UNIT_ALIASES = {"ug": "mcg", "µg": "mcg", "mcg": "mcg", "mg": "mg", "g": "g", "ml": "ml"}


@dataclass(frozen=True)
class Ingredient:
    name: str
    strength: str | None = None


def _norm_name(name: str) -> str:
    return _SPACES.sub(" ", name.strip().upper())


def _norm_strength(strength: str | None) -> str:
    if not strength:
        return ""
    m = _NUMBER_UNIT.search(strength)
    if not m:
        return _SPACES.sub(" ", strength.strip().lower())
    value = float(m.group(1))
    unit = _UNIT_ALIASES.get(m.group(2).lower(), m.group(2).lower())
    return f"{value:g} {unit}"


def clinical_drug_key(ingredients: list[Ingredient]) -> str | None:
    """Order-independent key of ingredients + strengths; None when nothing is known."""
    parts = sorted(
        f"{_norm_name(i.name)} {_norm_strength(i.strength)}".strip()
        for i in ingredients
        if i.name.strip()
    )
    return " / ".join(parts) if parts else None


def parse_label_ingredients(name: str, strength: str) -> list[Ingredient]:
    """Ingredients from label text such as name 'A / B' and strength 'A 10 mg / B 5 mg'."""
    if strength.strip():
        out = []
        for part in strength.split(" / "):
            m = _NUMBER_UNIT.search(part)
            if m:
                out.append(Ingredient(part[: m.start()].strip(), part[m.start() :].strip()))
            else:
                out.append(Ingredient(part.strip()))
        return out
    return [Ingredient(n.strip()) for n in name.split(" / ") if n.strip()]


def same_clinical_drug(
    key_a: str | None, key_b: str | None, form_a: str | None = None, form_b: str | None = None
) -> bool:
    """Equal non-empty keys, and equal dose forms when both are known."""
    if not key_a or not key_b or key_a != key_b:
        return False
    return not (form_a and form_b and form_a.lower() != form_b.lower())
