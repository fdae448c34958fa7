"""The imaging reference library over REST: enrol labelled DICOM references, list, remove."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel

from service.api.schemas import OFFSET_MAX, SafeText
from service.auth.deps import CanManageLibrary, CanReadLibrary, GuardedRoute
from service.deps import Settings, connection
from service.errors import DicomTooLarge, ModelNotLoaded, RequestInvalid, UnknownImagingReference
from service.models.image_embedder import ImageEmbedder
from service.workflows.imaging.library import (
    enrol_references,
    listing,
    reference_label,
    remove_references,
)

PREFIX = "/v1/imaging-references"
router = APIRouter(prefix=PREFIX, tags=["imaging reference library"], route_class=GuardedRoute)
Uid = Annotated[str, Path(max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]


def _embedder(request: Request) -> ImageEmbedder:
    embedder: ImageEmbedder | None = getattr(request.app.state, "image_embedder", None)
    if embedder is None:
        raise ModelNotLoaded("the imaging models are not loaded (imaging.content is off or failed)")
    return embedder


ImagingModels = Annotated[ImageEmbedder, Depends(_embedder)]


class LabelOut(BaseModel):
    modality: str
    body_part: str
    laterality: str | None = None
    view: str | None = None


class EnrolledFileOut(BaseModel):
    study_uid: str
    sop_uid: str
    frames: int
    header_modality: str | None


class ReferencesEnrolledOut(BaseModel):
    label: LabelOut
    references: list[EnrolledFileOut]
    images: int
    embedded: dict[str, int]  # model version -> images stored under it


class LabelCountOut(LabelOut):
    source: str
    model_version: str | None
    images: int


class ReferenceImageOut(LabelOut):
    record_id: int
    source: str
    study_uid: str
    series_uid: str | None
    sop_uid: str
    frame: int
    model_versions: list[str]
    created_at: datetime


class ReferenceListOut(BaseModel):
    counts: list[LabelCountOut]
    total: int
    limit: int
    offset: int
    items: list[ReferenceImageOut]


@router.post("", status_code=201, summary="Enrol labelled DICOM reference images")
async def enrol_imaging_references(
    request: Request,
    caller: CanManageLibrary,
    settings: Settings,
    embedder: ImagingModels,
    files: Annotated[list[UploadFile], File(description="one or more DICOM Part 10 files")],
    modality: Annotated[str, Form(max_length=16, description="DICOM Modality shown")],
    body_part: Annotated[str, Form(max_length=32, description="BodyPartExamined defined term")],
    laterality: Annotated[Literal["R", "L", "B", "U"] | None, Form()] = None,
    view: Annotated[str | None, Form(max_length=200, description="e.g. PA, lateral, axial")] = None,
) -> ReferencesEnrolledOut:
    lib = settings.imaging.library
    label = reference_label(
        modality, body_part, laterality, view, max_view_chars=lib.max_view_chars
    )
    if len(files) > lib.max_files:
        raise RequestInvalid(f"{len(files)} files in one enrolment; the limit is {lib.max_files}")
    limit = settings.limits.max_dicom_bytes
    blobs = []
    for upload in files:
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise DicomTooLarge(f"a DICOM file of more than {limit} bytes")
        blobs.append(data)
    done = await enrol_references(settings, embedder, lambda: connection(request), blobs, label)
    return ReferencesEnrolledOut(
        label=LabelOut(**vars(label)),
        references=[
            EnrolledFileOut(study_uid=r.study_uid, sop_uid=r.sop_uid, frames=len(r.records),
                            header_modality=r.header_modality)
            for r in done.references
        ],
        images=done.images,
        embedded=done.embedded,
    )  # fmt: skip


@router.get("", summary="Labelled reference images: counts per label and model version, a page")
async def list_imaging_references(
    request: Request,
    caller: CanReadLibrary,
    source: Literal["reference", "archive"] | None = None,
    modality: Annotated[SafeText | None, Query(max_length=16)] = None,
    body_part: Annotated[SafeText | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
) -> ReferenceListOut:
    counts, total, items = await listing(
        lambda: connection(request), source=source, modality=modality and modality.upper(),
        body_part=body_part and body_part.upper(), limit=limit, offset=offset,
    )  # fmt: skip
    return ReferenceListOut(
        counts=[LabelCountOut(**vars(c)) for c in counts],
        total=total,
        limit=limit,
        offset=offset,
        items=[ReferenceImageOut(**vars(i)) for i in items],
    )


@router.delete("/{study_uid}", status_code=204, summary="Remove a reference study's images")
async def remove_imaging_reference(
    request: Request, study_uid: Uid, caller: CanManageLibrary
) -> Response:
    if not await remove_references(lambda: connection(request), study_uid):
        raise UnknownImagingReference("the library holds no reference image of this study")
    return Response(status_code=204)
