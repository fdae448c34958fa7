"""Workflow results -> protobuf messages (and image messages -> bytes), shared by servicers."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import struct_pb2

from service.config import LimitSettings
from service.errors import RequestInvalid, UnsupportedMediaType
from service.rpc.gen.verity.v1 import pills_pb2
from service.workflows.pills.submit import check_image_bytes

MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic"})
BANDS = {"MATCH": pills_pb2.MATCH, "UNCERTAIN": pills_pb2.UNCERTAIN, "MISMATCH": pills_pb2.MISMATCH}


def image_bytes(image: pills_pb2.Image, limits: LimitSettings, name: str) -> bytes:
    """The bytes of an Image message within the limits; a declared format must be one Verity
    decodes (the bytes still decide, as over REST)."""
    if image.format and image.format.lower() not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"{name}: format must be one of {', '.join(sorted(MEDIA_TYPES))}"
        )
    return check_image_bytes(image.data, limits, name)


def required(value: str, name: str, max_length: int = 500) -> str:
    """A required text field, bounded as the REST form fields are."""
    if not value.strip():
        raise RequestInvalid(f"{name} is required")
    return optional(value, name, max_length) or ""


def optional(value: str, name: str, max_length: int = 500) -> str | None:
    if len(value) > max_length or any(ord(c) < 32 for c in value):
        raise RequestInvalid(f"{name}: at most {max_length} printable characters")
    return value.strip() or None


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (in evidence and features) as JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def to_struct(values: dict[str, Any] | None) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(json.loads(json.dumps(values or {}, default=_plain)))
    return out


def band(value: str) -> pills_pb2.Band:
    return BANDS.get(value, pills_pb2.BAND_UNSPECIFIED)
