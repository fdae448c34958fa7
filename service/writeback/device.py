"""Verity's AI as a FHIR Device, and the configuration of what Verity writes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.device import Device

from service import __version__
from service.config import Settings
from service.verify.results import ModelInfo
from service.writeback import codes
from service.writeback.datatypes import meta, narrative, ref, token_query


@dataclass(frozen=True)
class WritebackConfig:
    """Who Verity is on the EHR's FHIR server and what it writes there."""

    identifier_system: str = "urn:verity:verification"
    device_identifier_system: str = "urn:verity:device"
    provenance_tag_system: str = "urn:verity:provenance"
    device_id: str = "verity"
    device_name: str = "Verity pill verification"
    software_version: str = __version__
    manufacturer: str | None = None
    organization_reference: str | None = None  # e.g. "Organization/123"
    organization_display: str | None = None
    write_match: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WritebackConfig:
        """`write_match` from VERITY_OUTBOX__WRITE_MATCH; everything else from `overrides`."""
        return cls(**{"write_match": settings.outbox.write_match, **overrides})


def resolve(config: WritebackConfig | None) -> WritebackConfig:
    """The given config, or the defaults."""
    return config if config is not None else WritebackConfig()


def device_identifier(models: Sequence[ModelInfo], config: WritebackConfig | None = None) -> str:
    """One Device per (Verity version, model set): a new model version never reuses an old one."""
    cfg = resolve(config)
    spec = ";".join([cfg.software_version, *sorted(f"{m.name}={m.version}" for m in models)])
    return f"{cfg.device_id}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"


def verity_device(models: Sequence[ModelInfo], config: WritebackConfig | None = None) -> Device:
    """The AI Device (AI Transparency IG AI-Device shape) that authors every finding."""
    cfg = resolve(config)
    names = [{"name": cfg.device_name, "type": "user-friendly-name"}]
    names += [{"name": m.name, "type": "model-name"} for m in models]
    versions: list[dict[str, Any]] = [{"type": {"text": "software"}, "value": cfg.software_version}]
    versions += [
        {
            "type": {"text": "model"},
            "component": {"system": f"{cfg.device_identifier_system}:model", "value": m.name},
            "value": m.version,
        }
        for m in models
    ]
    model_text = ", ".join(f"{m.name} {m.version}" for m in models) or "none recorded"
    data: dict[str, Any] = {
        "meta": meta(codes.PROFILE_DEVICE),
        "text": narrative(
            f"{cfg.device_name} {cfg.software_version}: AI system that checks dispensed pills "
            f"against the prescribed order. Models: {model_text}.",
        ),
        "extension": [
            {
                "url": codes.AI_KIND_EXTENSION,
                "valueCodeableConcept": {"coding": [codes.AI_KIND_HYBRID]},
            }
        ],
        "identifier": [
            {"system": cfg.device_identifier_system, "value": device_identifier(models, cfg)}
        ],
        "status": "active",
        "deviceName": names,
        "type": {"coding": [dict(codes.AI_DEVICE_TYPE)], "text": "Artificial Intelligence"},
        "version": versions,
    }
    if cfg.manufacturer:
        data["manufacturer"] = cfg.manufacturer
    if cfg.organization_reference:
        data["owner"] = ref(cfg.organization_reference, cfg.organization_display)
    return Device(**data)


def device_search(models: Sequence[ModelInfo], config: WritebackConfig | None = None) -> str:
    """A conditional reference to the Device (valid inside a transaction Bundle)."""
    cfg = resolve(config)
    return "Device?" + token_query(
        "identifier", cfg.device_identifier_system, device_identifier(models, cfg)
    )
