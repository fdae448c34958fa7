"""Order sources besides the EHR's FHIR server: resources held in memory or read from a file
(a MedicationRequest, or a Bundle with it and its Medication), for dry runs and the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.errors import FhirResourceNotFound, OrderUnsupported


class StaticOrderSource:
    """Serves `read(type, id)` from a fixed set of resources."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self._by_ref = {f"{r['resourceType']}/{r.get('id', '')}": r for r in resources}

    async def read(self, resource_type: str, rid: str) -> dict[str, Any]:
        found = self._by_ref.get(f"{resource_type}/{rid}")
        if found is None:
            raise FhirResourceNotFound(f"{resource_type}/{rid} is not in the given resources")
        return found

    @classmethod
    def from_file(cls, path: Path) -> tuple[StaticOrderSource, str]:
        """The source and the reference of the MedicationRequest the file holds."""
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OrderUnsupported(f"cannot read {path.name}: {exc}") from None
        resources = (
            [e["resource"] for e in doc.get("entry", []) if "resource" in e]
            if doc.get("resourceType") == "Bundle"
            else [doc]
        )
        orders = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
        if len(orders) != 1:
            raise OrderUnsupported(f"{path.name} must hold exactly one MedicationRequest")
        orders[0].setdefault("id", "from-file")
        return cls(resources), f"MedicationRequest/{orders[0]['id']}"
