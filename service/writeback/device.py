"""Verity's AI as a FHIR Device conforming to the AI Transparency IG's AI-Device, any domain."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.device import Device

from service import __version__
from service.config import WritebackSettings
from service.verify.common import ModelInfo
from service.writeback import codes
from service.writeback.datatypes import meta, narrative, ref, urn
from service.writeback.modelcards import model_card, model_card_reference


@dataclass(frozen=True)
class AiDevice:
    """The AI that made a domain's findings: its models and, in the domain's words, its job."""

    models: tuple[ModelInfo, ...]
    purpose: str  # completes "AI system that ...", e.g. "checks dispensed pills against ..."
    kinds: tuple[Mapping[str, str], ...] = ()  # AIKind codings (AIdeviceTypeVS), specific ones
    notes: Mapping[str, str] = field(default_factory=dict)  # model name -> what it is, when
    # the model has no card file (its generated model card says this)
    software_version: str = __version__

    def identifier(self, settings: WritebackSettings) -> str:
        """One Device per (Verity version, model set): a new model version never reuses one."""
        spec = ";".join(
            [self.software_version, *sorted(f"{m.name}={m.version}" for m in self.models)]
        )
        return f"{settings.device_id}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"

    def full_url(self, settings: WritebackSettings) -> str:
        """The Device's fullUrl in a transaction Bundle (the same on every retry)."""
        return urn(settings.device_identifier_system, self.identifier(settings))

    def reference(self, settings: WritebackSettings) -> dict[str, str]:
        """What a domain's resource puts in `author` / `device`: the Device in the same Bundle."""
        return ref(self.full_url(settings), settings.device_name, "Device")

    def resource(self, settings: WritebackSettings) -> Device:
        """The Device resource, named as configured, owned by the organisation if configured."""
        names = [{"name": settings.device_name, "type": "user-friendly-name"}]
        names += [{"name": m.name, "type": "model-name"} for m in self.models]
        versions: list[dict[str, Any]] = [
            {"type": {"text": "software"}, "value": self.software_version}
        ]
        versions += [
            {
                "type": {"text": "model"},
                "component": {
                    "system": f"{settings.canonical_base}/sid/model",
                    "value": m.name,
                },
                "value": m.version,
            }
            for m in self.models
        ]
        model_text = ", ".join(f"{m.name} {m.version}" for m in self.models) or "none recorded"
        device_meta = meta(codes.PROFILE_DEVICE)
        device_meta["profile"].append(codes.PROFILE_IG_AI_DEVICE)
        extensions: list[dict[str, Any]] = [
            {"url": codes.AI_KIND_EXTENSION, "valueCodeableConcept": {"coding": [dict(k)]}}
            for k in self.kinds
        ]
        extensions += [
            {"url": codes.MODEL_CARD_EXTENSION, "valueReference": model_card_reference(settings, m)}
            for m in self.models
        ]
        data: dict[str, Any] = {
            "meta": device_meta,
            "text": narrative(
                f"{settings.device_name} {self.software_version}: AI system that "
                f"{self.purpose}. Models: {model_text}.",
            ),
            "extension": extensions,
            "identifier": [
                {"system": settings.device_identifier_system, "value": self.identifier(settings)}
            ],
            "status": "active",
            "deviceName": names,
            # Fixed exactly by AI-Device: {system, code}; the readable name is in deviceName.
            "type": {"coding": [dict(codes.AI_DEVICE_TYPE)]},
            "version": versions,
        }
        if settings.manufacturer:
            data["manufacturer"] = settings.manufacturer
        owner = organization(settings)
        if owner is not None:
            data["owner"] = owner
        return Device(**data)

    def model_cards(self, settings: WritebackSettings) -> list[dict[str, Any]]:
        """The AI-ModelCard DocumentReference of each model, in the Device's model order."""
        notes = dict(self.notes)
        return [model_card(m, notes, self.software_version, settings) for m in self.models]


def organization(settings: WritebackSettings) -> dict[str, str] | None:
    """The configured organisation as a Reference; None when none is configured."""
    if settings.organization is None:
        return None
    return ref(settings.organization, settings.organization_display, "Organization")
