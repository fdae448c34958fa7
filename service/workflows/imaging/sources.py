"""Which PACS a study is read from: a DICOMweb client per allowed base URL (made once, kept
for the process), or one fixed source (a folder: dry runs, the evaluation, the demo)."""

from __future__ import annotations

from pathlib import Path

import httpx

from service.config import PacsSettings
from service.fhir.dicom_sources import FolderSource, StudySource
from service.fhir.dicomweb import DicomWebClient, create_dicomweb_client
from service.fhir.pacs import pacs_base_for
from service.verify.imaging.study import StudyOrder


def folder_source(root: Path, settings: PacsSettings) -> FolderSource:
    """A folder read as the PACS, under the PACS's limits."""
    return FolderSource(
        root, max_instances=settings.max_instances, max_instance_bytes=settings.max_instance_bytes
    )


class PacsSources:
    """The allow-list decides the base (never an address the hospital did not configure)."""

    def __init__(
        self,
        settings: PacsSettings,
        *,
        fixed: StudySource | None = None,
        smart_auth: httpx.Auth | None = None,
    ) -> None:
        self._settings = settings
        self._fixed = fixed
        self._smart_auth = smart_auth
        self._clients: dict[str, DicomWebClient] = {}

    @classmethod
    def folder(cls, settings: PacsSettings, source: StudySource) -> PacsSources:
        """Every study read from one source (a folder), whatever its endpoints say."""
        return cls(settings, fixed=source)

    async def for_order(self, order: StudyOrder) -> StudySource:
        if self._fixed is not None:
            return self._fixed
        base = pacs_base_for(order.endpoints, self._settings)
        if base not in self._clients:
            self._clients[base] = await create_dicomweb_client(
                base, self._settings, smart_auth=self._smart_auth
            )
        return self._clients[base]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
