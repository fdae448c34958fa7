"""The imaging reference library workflow on its own real PostgreSQL + pgvector database, with
the bundled ONNX model and real DICOM: a content verdict follows what the library holds, and
re-embedding fills a model version from the stored canvases."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.config import Settings
from service.errors import DicomInvalid, DicomTooLarge, RequestInvalid
from service.evaluation.studies import read_case
from service.models.image_embedder import ImageEmbedder, load_image_embedder
from service.store import image_vectors, migrate
from service.store.pool import connect, reuse
from service.verify.imaging.results import FindingCode, Outcome
from service.vision.dicom.canvas import from_png
from service.workflows.imaging.check import check_study
from service.workflows.imaging.library import (
    enrol_references,
    prepare_file,
    reembed,
    reference_label,
    reference_patient_key,
    remove_references,
)
from service.workflows.imaging.sources import folder_source
from tests.conftest import SHARED_DATA

STUDIES = SHARED_DATA / "studies"
# The leg radiograph of case dev-029 comes from WG04 RG3; this is another file of that image
# (full size, another encoding): what a hospital would enrol as a lower-leg reference.
LEG_REFERENCE = SHARED_DATA / "dicom" / "other" / "wg04_RG3_cr_extremity_j2k_lossless.dcm"
CHEST_REFERENCE = next((STUDIES / "archive" / "dev-a01" / "dicom").glob("*.dcm"))


@pytest.fixture(scope="module")
def embedder() -> ImageEmbedder:
    loaded = load_image_embedder(Settings(environment="test"))  # type: ignore[call-arg]
    assert loaded is not None
    return loaded


@pytest.fixture
async def library(make_database: Any, tmp_path: Path) -> AsyncIterator[tuple[Settings, Any]]:
    """Settings on an empty database of its own (the verdicts depend on every reference)."""
    url: str = make_database("imglib")
    await migrate.upgrade(url)
    settings = Settings(  # type: ignore[call-arg]
        environment="test", database_url=url, data_dir=tmp_path,
        imaging={"content": {"plausibility": False}},  # the references alone decide here
    )  # fmt: skip
    conn = await connect(url, settings.db)
    try:
        yield settings, conn
    finally:
        await conn.close()


async def _content(settings: Settings, conn: Any, embedder: ImageEmbedder, case: str) -> Any:
    folder = STUDIES / case
    checked = await check_study(
        settings, await read_case(folder), folder_source(folder / "dicom", settings.pacs),
        reuse(conn), embedder=embedder,
    )  # fmt: skip
    return next(c for c in checked.verification.checks if c.code is FindingCode.CONTENT_MISMATCH)


async def test_a_content_verdict_follows_the_enrolled_references(library, embedder):
    settings, conn = library
    before = await _content(settings, conn, embedder, "dev-029")  # CR chest label, leg pixels
    assert before.outcome is Outcome.NOT_APPLICABLE  # nothing to compare with

    leg = reference_label("CR", "leg", "R", "AP")
    chest = reference_label("CR", "CHEST", view="PA")
    done = await enrol_references(
        settings, embedder, reuse(conn), [LEG_REFERENCE.read_bytes()], leg
    )
    await enrol_references(settings, embedder, reuse(conn), [CHEST_REFERENCE.read_bytes()], chest)
    assert done.images == 1 and done.embedded == {embedder.version(embedder.names[0]): 1}
    leg_study = done.references[0].study_uid

    after = await _content(settings, conn, embedder, "dev-029")
    assert after.outcome is Outcome.FAILED, after.summary
    nearest = after.evidence["images"][0]["nearest"][0]
    assert nearest["study_uid"] == leg_study and nearest["label"] == "CR LEG"

    assert await remove_references(reuse(conn), leg_study) == 1
    assert await remove_references(reuse(conn), leg_study) == 0
    again = await _content(settings, conn, embedder, "dev-029")
    assert again.outcome is not Outcome.FAILED


async def test_reference_records_carry_the_given_labels_and_a_reference_key(library, embedder):
    settings, conn = library
    label = reference_label("cr", " LEG ", "r", "AP")
    prepared = prepare_file(LEG_REFERENCE.read_bytes(), label, settings)
    rec = prepared.records[0]
    assert (rec.modality, rec.body_part, rec.laterality, rec.view) == ("CR", "LEG", "R", "AP")
    assert rec.source == "reference" and rec.labelled
    assert rec.patient_key == reference_patient_key(prepared.study_uid)
    assert from_png(rec.canvas_png).shape == prepared.canvases[0].shape


async def test_bad_labels_and_files_are_refused_before_anything_is_stored(library, embedder):
    settings, conn = library
    for bad in (
        ("SR", "CHEST"),
        ("CT", "NOSE"),
        ("CT", "HEAD", "X"),
        ("CT", "HEAD", None, "a\x00"),
    ):
        with pytest.raises(RequestInvalid):
            reference_label(*bad)
    label = reference_label("CR", "LEG")
    with pytest.raises(DicomInvalid):
        await enrol_references(
            settings, embedder, reuse(conn), [LEG_REFERENCE.read_bytes(), b"not dicom"], label
        )
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_image_pixels": 10_000})}
    )
    with pytest.raises(DicomTooLarge):
        await enrol_references(small, embedder, reuse(conn), [LEG_REFERENCE.read_bytes()], label)
    cur = await conn.execute("SELECT count(*) FROM image_record")
    assert (await cur.fetchone())[0] == 0


async def test_reembed_fills_a_new_model_version_from_the_stored_canvases(library, embedder):
    settings, conn = library
    name = embedder.names[0]
    current = embedder.version(name)
    prepared = prepare_file(CHEST_REFERENCE.read_bytes(), reference_label("CR", "CHEST"), settings)
    # Stored under an earlier model version only (as before a model upgrade).
    rng = np.random.default_rng(0)
    old = rng.normal(size=(len(prepared.records), 16)).astype(np.float32)
    await image_vectors.add(conn, prepared.records, "an-earlier-version", old)
    assert len(await image_vectors.records_without(conn, current)) == len(prepared.records)

    seen: list[tuple[str, int]] = []
    done = await reembed(embedder, reuse(conn), batch=1, progress=lambda v, n: seen.append((v, n)))
    assert done == {current: len(prepared.records)}
    assert seen[-1] == (current, len(prepared.records))
    assert await image_vectors.records_without(conn, current) == []
    direct = embedder.embed(name, [from_png(prepared.records[0].canvas_png)])[0]
    near = await image_vectors.nearest_labelled(conn, current, direct, k=1)
    assert near[0].sop_uid == prepared.sop_uid and near[0].distance < 1e-4
    assert await reembed(embedder, reuse(conn)) == {current: 0}  # nothing left to do
