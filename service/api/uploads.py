"""Reading uploaded files within the configured limits, before any decoding."""

from __future__ import annotations

from fastapi import UploadFile

from service.config import LimitSettings
from service.errors import ImageEmpty, ImageTooLarge


async def read_image_upload(upload: UploadFile, limits: LimitSettings) -> bytes:
    """The upload's bytes; too large or empty is refused without reading further."""
    data = await upload.read(limits.max_image_bytes + 1)
    if not data:
        raise ImageEmpty(f"{upload.filename or 'upload'} has zero bytes")
    if len(data) > limits.max_image_bytes:
        raise ImageTooLarge(
            f"{upload.filename or 'upload'} is over {limits.max_image_bytes} bytes",
            limit_bytes=limits.max_image_bytes,
        )
    return data
