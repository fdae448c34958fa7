"""An imaging verification as the API returns it and the audit table stores it."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from service.verify.imaging.results import ImagingVerification

_AS_JSON = TypeAdapter(ImagingVerification)


def to_json(v: ImagingVerification) -> dict[str, Any]:
    out: dict[str, Any] = _AS_JSON.dump_python(v, mode="json")
    out["outcome"] = v.outcome
    out["findings"] = [f.value for f in v.findings]
    out["needs_attention"] = v.needs_attention
    return out
