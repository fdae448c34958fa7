"""One AI-ModelCard DocumentReference per model version, made from the card Verity ships.

The AI Transparency IG's main transparency artefact: the model card, as a DocumentReference of
type `AIinputsCS#AIModelCard` carrying the card's Markdown. It is created once per model version
(a conditional create on the model-card identifier whose value is the model version), and both
the AI Device (`modelCardDescription`) and every Provenance (`entity`, role derivation) point at
it. A model with no card file (Verity's rule-based components) gets a card written from what
the domain says about it, so no model the Device names is left without one.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from service.config import WritebackSettings
from service.models.cards import card_of_version
from service.verify.common import ModelInfo
from service.writeback import codes
from service.writeback.datatypes import narrative, ref, urn

__all__ = ["card_markdown", "model_card", "model_card_id", "model_card_reference", "model_card_url"]


def model_card_id(model: ModelInfo) -> str:
    """The card's identifier value: the model version, which names its model (`<model>@<sha256
    prefix>` for Verity's cards); a bare version (e.g. `0.4.0`) is prefixed with the model name."""
    return model.version if "@" in model.version else f"{model.name}@{model.version}"


def model_card_url(settings: WritebackSettings, model: ModelInfo) -> str:
    """The card's fullUrl in a transaction Bundle: the same for a model version everywhere."""
    return urn(settings.model_card_identifier_system, model_card_id(model))


def model_card_reference(settings: WritebackSettings, model: ModelInfo) -> dict[str, str]:
    """A Reference to the card of `model` in the same Bundle."""
    return ref(
        model_card_url(settings, model),
        f"model card of {model.name} {model.version}",
        "DocumentReference",
    )


def card_markdown(model: ModelInfo, notes: dict[str, str], software: str) -> str:
    """The card's Markdown: the bundled `.card.md` when the version has a card, else one made
    from the domain's note about this component (rule-based parts have no card file)."""
    found = card_of_version(model.version)
    if found is not None:
        return found[1]
    note = notes.get(model.name, "A component of Verity; no card file is bundled for it.")
    return (
        f"# Model card: {model.name}\n\n"
        f"- **Version**: `{model.version}`\n"
        f"- **Part of**: Verity {software}\n"
        f"- **What it is**: {note}\n"
    )


def model_card(
    model: ModelInfo, notes: dict[str, str], software: str, settings: WritebackSettings
) -> dict[str, Any]:
    """The AI-ModelCard DocumentReference of one model version (R4 DocumentReference)."""
    text = card_markdown(model, notes, software)
    raw = text.encode()
    title = f"Model card: {model.name} {model.version}"
    return {
        "resourceType": "DocumentReference",
        # Not AI-asserted: the card is what Verity's makers wrote about the model.
        "meta": {"profile": [codes.PROFILE_MODEL_CARD, codes.PROFILE_IG_AI_MODEL_CARD]},
        "text": narrative(f"{title} (Verity {software}). The card is the attached Markdown."),
        "identifier": [
            {"system": settings.model_card_identifier_system, "value": model_card_id(model)}
        ],
        "status": "current",
        "type": {"coding": [dict(codes.AI_MODEL_CARD_TYPE)]},
        "category": [{"coding": [dict(codes.AI_MODEL_CARD_MARKDOWN)]}],
        "description": text,
        "content": [
            {
                "attachment": {
                    "contentType": "text/markdown",
                    "language": "en",
                    "data": base64.b64encode(raw).decode(),
                    "size": len(raw),
                    # R4 Attachment.hash is the SHA-1 of the data, base64-encoded.
                    "hash": base64.b64encode(
                        hashlib.sha1(raw, usedforsecurity=False).digest()
                    ).decode(),
                    "title": title,
                }
            }
        ],
    }
