"""Fingerprint store on the real embedded PostgreSQL + pgvector (HNSW, bit Hamming)."""

import random
import uuid

import pytest

from service.config import ImagingSettings
from service.store import fingerprints as store
from service.store.fingerprints import FingerprintMatch, FingerprintRow
from service.vision.dicom.decode import decode_image, read_part10
from service.vision.dicom.fingerprint import FINGERPRINT_BITS, fingerprint
from tests.conftest import SHARED_DATA

STUDIES = SHARED_DATA / "studies"


def _flip(bits: str, n: int, rng: random.Random) -> str:
    out = list(bits)
    for i in rng.sample(range(len(bits)), n):
        out[i] = "1" if out[i] == "0" else "0"
    return "".join(out)


def _row(sop: str, patient: str, fp: str, study: str = "1.2.3", **kw) -> FingerprintRow:
    return FingerprintRow(
        sop_uid=sop,
        series_uid=study + ".1",
        study_uid=study,
        patient_key=patient,
        frame=0,
        fingerprint=fp,
        source=kw.pop("source", "archive"),
        **kw,
    )


async def test_column_holds_fingerprint_bits(conn):
    cur = await conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'image_fingerprint'::regclass AND attname = 'fingerprint'"
    )
    assert (await cur.fetchone())[0] == f"bit({FINGERPRINT_BITS})"


async def test_nearest_skips_the_same_patient_even_when_it_fills_the_candidates(conn):
    rng = random.Random(7)
    query = "".join(rng.choice("01") for _ in range(FINGERPRINT_BITS))
    own = [_row(f"1.1.{i}", "patient-a", _flip(query, 2 + i % 12, rng)) for i in range(60)]
    others = [
        _row(f"2.2.{i}", "patient-b", _flip(query, 20 + i, rng), study="2.2") for i in range(3)
    ]
    noise = [
        _row(
            f"3.3.{i}",
            f"patient-{i % 7}",
            "".join(rng.choice("01") for _ in range(FINGERPRINT_BITS)),
        )
        for i in range(300)
    ]
    assert await store.add(conn, own + others + noise) == 363
    await conn.execute("SET LOCAL enable_seqscan = off")  # the HNSW index, not a table scan
    plan = await conn.execute(
        "EXPLAIN SELECT id FROM image_fingerprint ORDER BY fingerprint <~> %s::bit(256) LIMIT 3",
        (query,),
    )
    assert "image_fingerprint_hnsw_idx" in " ".join(r[0] for r in await plan.fetchall())
    # ef_search 40 < 60 own images nearer than any other: only the iterative scan finds B.
    found = await store.nearest_other_patients(
        conn, query, "patient-a", k=3, max_distance=48, ef_search=40
    )
    assert [m.sop_uid for m in found] == ["2.2.0", "2.2.1", "2.2.2"]
    assert [m.distance for m in found] == [20, 21, 22]
    assert all(m.kind == "pixels" for m in found)
    # the exact distance filter: nothing of another patient within 19 bits
    assert await store.nearest_other_patients(conn, query, "patient-a", k=3, max_distance=19) == []


def _fingerprint_of(path) -> str:
    image = decode_image(read_part10(path.read_bytes()), max_frames=1, frame_limit=1000)
    return fingerprint(image.frames[0])


async def test_a_reencoded_duplicate_of_another_patient_is_found(conn):
    archive = sorted((STUDIES / "archive").glob("dev-a*/dicom/*.dcm"))
    assert len(archive) == 9, "archive studies missing"
    rows = [
        _row(f"9.{i}", f"archived-{i}", _fingerprint_of(p), study=f"9.{i}.0")
        for i, p in enumerate(archive)
    ]
    assert await store.add(conn, rows) == 9
    assert await store.add(conn, rows) == 0  # enrolling twice stores nothing twice
    limit = ImagingSettings().duplicate_max_distance
    # dev-039: the archived head CT (dev-a03) re-encoded as lossy JPEG 2000
    case = _fingerprint_of(next((STUDIES / "dev-039" / "dicom").glob("*.dcm")))
    found = await store.nearest_other_patients(conn, case, "case-patient", k=5, max_distance=limit)
    a03 = archive.index(next(p for p in archive if "dev-a03" in str(p)))
    assert [m.study_uid for m in found] == [f"9.{a03}.0"]
    # the same pixels under the archived patient's own key are not a finding
    assert (
        await store.nearest_other_patients(conn, case, f"archived-{a03}", k=5, max_distance=limit)
        == []
    )


async def test_sop_uid_reused_under_another_patient(conn):
    fp = "0" * FINGERPRINT_BITS
    verification = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO verification (id, kind, request_sha256, order_ref, verdict, result)"
        " VALUES (%s, 'imaging', 'h', 'ImagingStudy/1', 'done', '{}')",
        (verification,),
    )
    await store.add(
        conn,
        [
            _row("1.2.840.1", "patient-a", fp, study="5.5"),
            _row(
                "1.2.840.2",
                "patient-b",
                fp,
                study="6.6",
                source="verification",
                verification_id=verification,
            ),
        ],
    )
    found = await store.sop_uids_elsewhere(conn, ["1.2.840.1", "1.2.840.2", "7.7"], "patient-b")
    assert found == [FingerprintMatch("1.2.840.1", "5.5", None, "sop_uid")]
    assert await store.sop_uids_elsewhere(conn, ["1.2.840.2"], "patient-b") == []
    assert await store.sop_uids_elsewhere(conn, [], "patient-b") == []
    assert await store.forget_study(conn, "6.6", source="archive") == 0
    assert await store.forget_study(conn, "6.6") == 1


async def test_a_verification_row_needs_its_verification(conn):
    import psycopg

    with pytest.raises(psycopg.errors.CheckViolation):
        async with conn.transaction():
            await store.add(conn, [_row("1.9", "p", "1" * FINGERPRINT_BITS, source="verification")])
