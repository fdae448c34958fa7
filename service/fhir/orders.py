"""Order sources besides the EHR's FHIR server: resources held in memory or read from files
(a MedicationRequest, or a Bundle with it and its Medication; an ImagingStudy with its Patient
and ServiceRequest), for dry runs, the evaluation and the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.errors import FhirResourceNotFound, FileUnreadable, OrderFileInvalid


class StaticOrderSource:
    """Serves `read(type, id)` from a fixed set of resources."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self._by_ref = {f"{r.get('resourceType')}/{r.get('id', '')}": r for r in resources}

    async def read(self, resource_type: str, rid: str) -> dict[str, Any]:
        found = self._by_ref.get(f"{resource_type}/{rid}")
        if found is None:
            raise FhirResourceNotFound(f"{resource_type}/{rid} is not in the given resources")
        return found

    @classmethod
    def from_file(cls, path: Path) -> tuple[StaticOrderSource, str]:
        """The source and the reference of the MedicationRequest the file holds."""
        return cls.from_files([path], "MedicationRequest")

    @classmethod
    def from_files(cls, paths: list[Path], main_type: str) -> tuple[StaticOrderSource, str]:
        """The resources of the files (each a resource or a Bundle) and the reference of the one
        `main_type` resource among them (e.g. an ImagingStudy beside its Patient and order)."""
        resources = [r for path in paths for r in _resources(path)]
        main = [r for r in resources if r.get("resourceType") == main_type]
        if len(main) != 1:
            names = ", ".join(p.name for p in paths)
            raise OrderFileInvalid(f"{names} must hold exactly one {main_type}")
        main[0].setdefault("id", "from-file")
        return cls(resources), f"{main_type}/{main[0]['id']}"


def _resources(path: Path) -> list[dict[str, Any]]:
    """The FHIR resources of one JSON file: a resource, or the entries of a Bundle."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise OrderFileInvalid(f"{path.name} is not UTF-8 text") from None
    except OSError as exc:
        raise FileUnreadable(f"{path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise OrderFileInvalid(f"{path.name} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise OrderFileInvalid(f"{path.name} holds no FHIR resource (a JSON object)")
    entries = doc.get("entry") if doc.get("resourceType") == "Bundle" else None
    resources = (
        [e["resource"] for e in entries if isinstance(e, dict) and "resource" in e]
        if isinstance(entries, list)
        else [doc]
    )
    return [r for r in resources if isinstance(r, dict)]
