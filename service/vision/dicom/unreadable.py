"""The one exception of DICOM pixel handling: the workflow turns it into UNREADABLE_IMAGE."""

from __future__ import annotations


class PixelsUnreadable(Exception):
    """The pixels of an instance cannot be shown; `reason` is short and carries no PHI."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
