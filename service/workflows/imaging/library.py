"""The imaging reference library: a hospital's labelled reference images per (modality, body
part, laterality, view), enrolled from DICOM files over the API or `verity library studies`,
and re-embedded from their stored canvases when a model changes (no PACS needed).

A reference is not a patient's study. Its images are stored with `source="reference"`,
`labelled=True` and the patient key `reference_patient_key(StudyInstanceUID)`: one constant
key per reference study, never the key of a real patient (no MRN is read from the file), so a
reference is a neighbour of every patient's images and never one of their priors. The labels
are the ones the person enrolling gives, not the header's: a reference says what the pixels
show, and headers are what the content check doubts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from service.config import Settings
from service.errors import DicomInvalid, RequestInvalid
from service.models.image_embedder import ImageEmbedder
from service.store import fingerprints, image_references, image_vectors
from service.store.image_vectors import ImageRecord
from service.store.pool import Connect
from service.verify.imaging.acquisition import NON_IMAGE
from service.verify.imaging.bodyparts import region_for_term
from service.vision.dicom.canvas import canvas, from_png, to_png
from service.vision.dicom.decode import PixelsUnreadable, decode_image, read_part10
from service.workflows.imaging.check import patient_key

REFERENCE_SYSTEM = "urn:verity:imaging-reference"
LATERALITIES = ("R", "L", "B", "U")
# DICOM Modality defined terms (PS3.3 C.7.3.1.1.1) of objects that hold images; the retired
# terms that archives still carry (CD, DD, DS, DR, DM, EC, FA, LP, MA, MS, ST, VF, OPM, OPR, OPV,
# CP, CS, RG) are accepted too. Non-image objects (SR, KO, PR, SEG...) are refused.
IMAGE_MODALITIES = frozenset(
    "AR BDUS BI BMD CR CT DG DX ES GM IO IVOCT IVUS KER LS MG MR NM OAM OCT OP OPT OPTBSV "
    "OPTENF OSS OT PT PX RF RG SM TG US XA XC "
    "CD CP CS DD DM DR DS EC FA LP MA MS OPM OPR OPV ST VF".split()
)

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class ReferenceLabel:
    """What a reference shows: DICOM Modality, BodyPartExamined defined term, side and view."""

    modality: str
    body_part: str
    laterality: str | None = None
    view: str | None = None


def reference_label(
    modality: str,
    body_part: str,
    laterality: str | None = None,
    view: str | None = None,
    *,
    max_view_chars: int = 64,
) -> ReferenceLabel:
    """A validated label: a known image Modality, a BodyPartExamined defined term, R/L/B/U."""
    mod = modality.strip().upper()
    if mod not in IMAGE_MODALITIES or mod in NON_IMAGE:
        raise RequestInvalid(f"modality {mod[:16]!r} is not a DICOM Modality of images")
    region = region_for_term(body_part)
    if region is None:
        raise RequestInvalid(
            f"body_part {body_part.strip()[:32]!r} is not a DICOM BodyPartExamined defined term"
        )
    side = (laterality or "").strip().upper() or None
    if side is not None and side not in LATERALITIES:
        raise RequestInvalid("laterality must be R, L, B or U")
    label = (view or "").strip() or None
    if label is not None and (len(label) > max_view_chars or not label.isprintable()):
        raise RequestInvalid(f"view must be printable text of at most {max_view_chars} characters")
    return ReferenceLabel(mod, region, side, label)


def reference_patient_key(study_uid: str) -> str:
    """The constant patient key of a reference study (see the module docstring)."""
    return patient_key(REFERENCE_SYSTEM, study_uid)


@dataclass(frozen=True)
class PreparedReference:
    """One DICOM file's representative frames, as canvases, with the records to store."""

    study_uid: str
    sop_uid: str
    header_modality: str | None
    records: list[ImageRecord]
    canvases: list[np.ndarray]


def prepare_file(data: bytes, label: ReferenceLabel, settings: Settings) -> PreparedReference:
    """Decode one DICOM file within the limits (call from a worker thread); a file whose pixels
    cannot be shown is refused (DicomInvalid), never stored."""
    limits = settings.limits
    ds = read_part10(data, max_bytes=limits.max_dicom_bytes)
    study_uid, sop_uid = str(ds.get("StudyInstanceUID", "")), str(ds.SOPInstanceUID)
    if not study_uid:
        raise DicomInvalid("DICOM dataset without Study Instance UID")
    try:
        image = decode_image(
            ds, max_frames=settings.imaging.representative_frames,
            frame_limit=limits.max_dicom_frames, max_pixels=limits.max_image_pixels,
        )  # fmt: skip
    except PixelsUnreadable as exc:
        raise DicomInvalid(f"the pixels cannot be shown: {exc.reason}") from None
    key = reference_patient_key(study_uid)
    canvases = [canvas(frame) for frame in image.frames]
    records = [
        ImageRecord(
            sop_uid=sop_uid,
            series_uid=str(ds.get("SeriesInstanceUID", "")) or None,
            study_uid=study_uid,
            patient_key=key,
            frame=index,
            canvas_png=to_png(c),
            source="reference",
            modality=label.modality,
            body_part=label.body_part,
            laterality=label.laterality,
            view=label.view,
            labelled=True,
        )  # fmt: skip
        for index, c in zip(image.frame_indices, canvases, strict=True)
    ]
    header_modality = str(ds.get("Modality", "")) or None
    return PreparedReference(study_uid, sop_uid, header_modality, records, canvases)


@dataclass
class Enrolment:
    """What one enrolment stored: the references (files) and images embedded per model."""

    references: list[PreparedReference] = field(default_factory=list)
    embedded: dict[str, int] = field(default_factory=dict)  # model version -> images

    @property
    def images(self) -> int:
        return sum(len(r.records) for r in self.references)


async def enrol_references(
    settings: Settings,
    embedder: ImageEmbedder,
    connect: Connect,
    files: Sequence[bytes],
    label: ReferenceLabel,
) -> Enrolment:
    """Decode every file first (one bad file refuses them all, nothing stored), embed the
    canvases with every configured model, then store them in one transaction."""
    most = settings.imaging.library.max_files
    if len(files) > most:
        raise RequestInvalid(f"{len(files)} files in one enrolment; the limit is {most}")
    done = Enrolment()
    for data in files:
        done.references.append(await asyncio.to_thread(prepare_file, data, label, settings))
    records = [r for p in done.references for r in p.records]
    canvases = [c for p in done.references for c in p.canvases]
    vectors: dict[str, np.ndarray] = {}
    for name in embedder.names:
        vectors[embedder.version(name)] = await asyncio.to_thread(embedder.embed, name, canvases)
    async with connect() as conn, conn.transaction():
        for version, these in vectors.items():
            done.embedded[version] = await image_vectors.add(conn, records, version, these)
    return done


async def remove_references(connect: Connect, study_uid: str, *, archive: bool = False) -> int:
    """Delete a reference study's images and embeddings (`archive`: also the study's archive
    history, images and fingerprints); returns the images deleted."""
    async with connect() as conn, conn.transaction():
        removed = await image_vectors.forget_study(conn, study_uid, source="reference")
        if archive:
            removed += await image_vectors.forget_study(conn, study_uid, source="archive")
            await fingerprints.forget_study(conn, study_uid, source="archive")
        return removed


async def listing(
    connect: Connect,
    *,
    source: str | None = None,
    modality: str | None = None,
    body_part: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[image_references.LabelCount], int, list[image_references.ReferenceImage]]:
    """Counts per label and model version, and one page of the labelled images (reference
    library and labelled archive history; `source` picks one)."""
    filters = {"source": source, "modality": modality, "body_part": body_part}
    async with connect() as conn:
        counts = await image_references.label_counts(conn, **filters)
        total, page = await image_references.list_images(
            conn, **filters, limit=limit, offset=offset
        )
    return counts, total, page


async def reembed(
    embedder: ImageEmbedder,
    connect: Connect,
    *,
    names: Sequence[str] | None = None,
    batch: int = 256,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Embed every stored image that has no embedding under a model's current version, from
    its stored canvas, `batch` at a time; returns images embedded per model version."""
    done: dict[str, int] = {}
    for name in names or embedder.names:
        version = embedder.version(name)
        done[version] = 0
        while True:
            async with connect() as conn:
                rows = await image_vectors.records_without(conn, version, limit=batch)
            if not rows:
                break
            canvases = [from_png(png) for _, png in rows]
            vectors = await asyncio.to_thread(embedder.embed, name, canvases)
            async with connect() as conn, conn.transaction():
                await image_vectors.add_embeddings(conn, version, [i for i, _ in rows], vectors)
            done[version] += len(rows)
            if progress is not None:
                progress(version, done[version])
    return done
