"""The embedding tier on real DICOM, the bundled ONNX backbone and pgvector: a cropped,
re-windowed copy of another patient's archived image (the fingerprint misses it, the embedding
finds it), pixels of another body part than the header and the order agree on (the nearest
labelled references say so), and the tiers that are skipped when they cannot change the answer."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pydicom
import pytest
from pgvector.psycopg import register_vector_async
from pydicom.uid import ExplicitVRLittleEndian

from service.config import Settings
from service.evaluation.studies import read_case
from service.models.image_embedder import ImageEmbedder, load_image_embedder
from service.store import migrate
from service.verify.imaging.results import FindingCode, Outcome
from service.vision.dicom.decode import decode_image, read_part10
from service.vision.dicom.fingerprint import fingerprint, hamming
from service.workflows.imaging.check import check_study, enrol_study
from service.workflows.imaging.sources import folder_source
from tests.conftest import SHARED_DATA

STUDIES = SHARED_DATA / "studies"
IDENTITY = (
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex", "IssuerOfPatientID",
    "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
    "SOPClassUID", "StudyDate", "Modality", "BodyPartExamined", "InstanceNumber",
    "SeriesNumber",
)  # fmt: skip


@pytest.fixture(scope="module")
def embedder() -> ImageEmbedder:
    loaded = load_image_embedder(Settings())
    assert loaded is not None
    return loaded


@pytest.fixture
async def connect(make_database: Callable[[str], str]) -> Callable[[], Any]:
    """A fresh migrated database per test (the archive of one test never leaks to another)."""
    url = make_database("tiers")
    await migrate.upgrade(url)

    @asynccontextmanager
    async def opened() -> AsyncIterator[psycopg.AsyncConnection]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            await register_vector_async(c)
            yield c

    return opened


def settings(**content: Any) -> Settings:
    imaging = {"patient_id_issuers": ["HOSPITAL.EXAMPLE"], "content": content}
    return Settings(imaging=imaging)  # type: ignore[arg-type]


def only_dicom(folder: Path) -> Path:
    return next((folder / "dicom").glob("*.dcm"))


def case_with_pixels_of(tmp: Path, case: str, source: Path, *, crop: float, gamma: float) -> Path:
    """The case's EHR resources and header identity, with the pixels of `source` cropped by
    `crop` on each side and re-windowed by `gamma` (stored uncompressed)."""
    folder = tmp / case
    shutil.copytree(STUDIES / case / "fhir", folder / "fhir")
    (folder / "dicom").mkdir()
    header = pydicom.dcmread(only_dicom(STUDIES / case))
    ds = pydicom.dcmread(source)
    shown = decode_image(read_part10(source.read_bytes()), max_frames=1, frame_limit=1).frames[0]
    h, w = shown.shape[:2]
    dy, dx = int(h * crop), int(w * crop)
    pixels = shown[dy : h - dy, dx : w - dx].astype(np.float64) / 255.0
    pixels = np.clip(255.0 * pixels**gamma, 0, 255).astype(np.uint8)
    for keyword in IDENTITY:
        if keyword in header:
            setattr(ds, keyword, header.data_element(keyword).value)
    for keyword in ("WindowCenter", "WindowWidth", "VOILUTSequence", "RescaleSlope",
                    "RescaleIntercept", "PixelPaddingValue"):  # fmt: skip
        if keyword in ds:
            delattr(ds, keyword)
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 7, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = pixels.tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.save_as(folder / "dicom" / "altered.dcm", enforce_file_format=True)
    return folder


async def enrol(connect: Any, embedder: ImageEmbedder, *studies: str) -> None:
    for study in studies:
        folder = STUDIES / "archive" / study
        order = await read_case(folder)
        source = folder_source(folder / "dicom", settings().pacs)
        assert await enrol_study(settings(), order, source, connect, embedder=embedder) == 1


async def check(
    connect: Any, embedder: ImageEmbedder | None, folder: Path, cfg: Settings | None = None
) -> Any:
    cfg = cfg or settings()
    order = await read_case(folder)
    source = folder_source(folder / "dicom", cfg.pacs)
    return (await check_study(cfg, order, source, connect, embedder=embedder)).verification


def frame_print(path: Path) -> str:
    image = decode_image(read_part10(path.read_bytes()), max_frames=1, frame_limit=1)
    return fingerprint(image.frames[0])


async def test_a_cropped_rewindowed_copy_of_another_patients_image_is_found_by_its_embedding(
    connect: Any, embedder: ImageEmbedder, tmp_path: Path
) -> None:
    await enrol(connect, embedder, "dev-a01")
    archived = only_dicom(STUDIES / "archive" / "dev-a01")
    case = case_with_pixels_of(tmp_path, "dev-018", archived, crop=0.04, gamma=0.8)
    bits = hamming(frame_print(archived), frame_print(only_dicom(case)))
    assert bits > settings().imaging.duplicate_max_distance  # the fingerprint tier misses it

    without = await check(connect, None, case)
    assert without.findings == []
    v = await check(connect, embedder, case)
    assert v.findings == [FindingCode.DUPLICATE_IMAGE]
    dup = next(c for c in v.checks if c.code is FindingCode.DUPLICATE_IMAGE)
    assert {m["kind"] for m in dup.evidence["matches"]} == {"embedding"}
    assert dup.dicom == ((await read_case(STUDIES / "archive" / "dev-a01")).study_uid,)
    assert "embeddings" in v.tiers and v.tiers["embeddings"]["checks"]
    cost = v.tiers["embeddings"]["models"]["efficientnet-lite0"]
    assert cost["images"] == 1 and cost["cpu_ms"] > 0


async def test_pixels_of_another_body_part_than_header_and_order_agree_on_are_a_content_mismatch(
    connect: Any, embedder: ImageEmbedder, tmp_path: Path
) -> None:
    await enrol(connect, embedder, "dev-a02", "dev-a03")  # CT abdomen, CT head: labelled
    abdomen = only_dicom(STUDIES / "archive" / "dev-a02")
    case = case_with_pixels_of(tmp_path, "dev-021", abdomen, crop=0.02, gamma=1.0)  # "CT head"
    v = await check(connect, embedder, case)
    content = next(c for c in v.checks if c.code is FindingCode.CONTENT_MISMATCH)
    assert content.outcome is Outcome.FAILED, content.summary
    assert content.dicom == ("CT ABDOMEN",) and content.expected == ("CT HEAD",)
    nearest = content.evidence["images"][0]["nearest"][0]
    assert nearest["label"] == "CT ABDOMEN" and nearest["distance"] < 0.1
    assert FindingCode.CONTENT_MISMATCH in v.findings


async def test_the_clean_study_passes_and_the_content_tier_is_skipped_when_the_header_disagrees(
    connect: Any, embedder: ImageEmbedder
) -> None:
    await enrol(connect, embedder, "dev-a01")
    clean = await check(connect, embedder, STUDIES / "dev-044")  # DX chest, another source
    content = next(c for c in clean.checks if c.code is FindingCode.CONTENT_MISMATCH)
    assert clean.findings == [] and content.outcome is Outcome.PASSED, content.summary
    wrong = await check(connect, embedder, STUDIES / "dev-006")  # MODALITY_MISMATCH
    content = next(c for c in wrong.checks if c.code is FindingCode.CONTENT_MISMATCH)
    assert wrong.findings == [FindingCode.MODALITY_MISMATCH]
    assert content.outcome is Outcome.NOT_APPLICABLE
    assert wrong.tiers["embeddings"]["checks"] == ["near_duplicate"]


ARCHIVE = sorted(p.name for p in (STUDIES / "archive").iterdir() if (p / "fhir").is_dir())


# a leg radiograph labelled chest PA, a head CT slice labelled abdomen, a 64x64 brain MR
# labelled shoulder: the header and the order agree, only the pixels are wrong
@pytest.mark.parametrize("case", ["dev-029", "dev-030", "dev-043"])
async def test_pixels_that_cannot_be_the_declared_body_part_are_a_content_mismatch(
    connect: Any, embedder: ImageEmbedder, case: str
) -> None:
    await enrol(connect, embedder, *ARCHIVE)
    v = await check(connect, embedder, STUDIES / case)
    assert v.findings == [FindingCode.CONTENT_MISMATCH]
    content = next(c for c in v.checks if c.code is FindingCode.CONTENT_MISMATCH)
    assert content.outcome is Outcome.FAILED and "physically implausible" in content.summary
    physical = content.evidence["images"][0]["plausibility"]
    assert physical["verdict"] == "IMPLAUSIBLE" and physical["rules"][0]["source"]
    # the references alone do not find it (docs/imaging.md): the physical rules do
    off = await check(connect, embedder, STUDIES / case, settings(plausibility=False))
    assert off.findings == []


def with_new_study_uid(folder: Path) -> Path:
    """The folder's study as another, earlier study of the same patient (new UIDs)."""
    study_uid, series_uid, sop_uid = (pydicom.uid.generate_uid() for _ in range(3))
    path = only_dicom(folder)
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.save_as(path, enforce_file_format=True)
    imaging_study = folder / "fhir" / "ImagingStudy.json"
    resource = json.loads(imaging_study.read_text())
    for ident in resource["identifier"]:
        if ident.get("system") == "urn:dicom:uid":
            ident["value"] = f"urn:oid:{study_uid}"
    imaging_study.write_text(json.dumps(resource))
    return folder


async def test_a_study_nearer_another_patients_image_than_the_patients_own_prior_is_uncertain(
    connect: Any, embedder: ImageEmbedder, tmp_path: Path
) -> None:
    cfg = settings(lookalike=True)
    await enrol(connect, embedder, "dev-a01")  # another patient's chest film (WG04 RG1)
    own = STUDIES / "dev-018"  # this patient's earlier chest film (NIH), under dev-044's patient
    prior = with_new_study_uid(case_with_pixels_of(tmp_path / "prior", "dev-044", only_dicom(own),
                                                   crop=0.0, gamma=1.0))  # fmt: skip
    order = await read_case(prior)
    source = folder_source(prior / "dicom", cfg.pacs)
    assert await enrol_study(cfg, order, source, connect, embedder=embedder, labelled=False) == 1

    same = await check(connect, embedder, STUDIES / "dev-044", cfg)  # the same chest again
    look = next(c for c in same.checks if c.evidence.get("kind") == "prior_lookalike")
    assert look.outcome is Outcome.PASSED, look.summary

    archived = only_dicom(STUDIES / "archive" / "dev-a01")
    other = case_with_pixels_of(tmp_path / "new", "dev-044", archived, crop=0.04, gamma=0.8)
    v = await check(connect, embedder, other, cfg)
    look = next(c for c in v.checks if c.evidence.get("kind") == "prior_lookalike")
    assert look.code is FindingCode.PATIENT_ID_MISMATCH
    assert look.outcome is Outcome.UNCERTAIN and "Possible wrong patient" in look.summary
    seen = look.evidence["images"][0]
    assert seen["own_prior"] - seen["other_patient"] > cfg.imaging.content.lookalike_margin
    assert seen["other_study_uid"] == (await read_case(STUDIES / "archive" / "dev-a01")).study_uid
    assert FindingCode.PATIENT_ID_MISMATCH not in v.findings  # never a failure: a person looks
