"""Reading uploaded files within the configured limits, before any decoding."""

from __future__ import annotations

from fastapi import UploadFile

from service.config import LimitSettings
from service.workflows.pills.submit import check_image_bytes


async def read_image_upload(upload: UploadFile, limits: LimitSettings) -> bytes:
    """The upload's bytes; too large or empty is refused without reading further."""
    data = await upload.read(limits.max_image_bytes + 1)
    return check_image_bytes(data, limits, upload.filename or "upload")
