"""Order sources besides the EHR's FHIR server: resources held in memory or read from a file
(a MedicationRequest, or a Bundle with it and its Medication), for dry runs and the demo."""

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
        resources = [r for r in resources if isinstance(r, dict)]
        orders = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
        if len(orders) != 1:
            raise OrderFileInvalid(f"{path.name} must hold exactly one MedicationRequest")
        orders[0].setdefault("id", "from-file")
        return cls(resources), f"MedicationRequest/{orders[0]['id']}"
