"""Image embedding store on the real embedded PostgreSQL + pgvector (partial HNSW per model
version, cosine, iterative scans), and the library listing beside it."""

import uuid

import numpy as np

from service.store import image_references
from service.store import image_vectors as store
from service.store.image_vectors import ImageRecord

DIM = 32
PNG = b"\x89PNG-not-decoded-here"


def _version() -> str:
    return f"test-model-{uuid.uuid4().hex[:8]}"  # a private version: no other test's rows


def _rec(sop: str, patient: str, study: str = "1.2.3", **kw) -> ImageRecord:
    return ImageRecord(
        sop_uid=sop, series_uid=study + ".1", study_uid=study, patient_key=patient,
        frame=kw.pop("frame", 0), canvas_png=PNG, source=kw.pop("source", "archive"), **kw,
    )  # fmt: skip


def _near(q: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at exactly this cosine distance from q, in a random direction."""
    u = rng.normal(size=q.shape)
    u -= (u @ q) * q
    u /= np.linalg.norm(u)
    cos = 1.0 - distance
    return (cos * q + np.sqrt(1 - cos * cos) * u).astype(np.float32)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


async def _labels(conn, sop):
    cur = await conn.execute(
        "SELECT modality, body_part, view, labelled FROM image_record WHERE sop_uid = %s", (sop,)
    )
    return await cur.fetchall()


async def test_add_upserts_labels_and_replaces_the_embedding(conn):
    version, rng = _version(), np.random.default_rng(1)
    sop = f"9.{uuid.uuid4().int % 10**9}"
    first, second = _unit(rng), _unit(rng)
    assert await store.add(conn, [_rec(sop, "p1", modality="CR")], version, first[None]) == 1
    again = _rec(sop, "p1", modality="CR", body_part="CHEST", view="PA", labelled=True)
    assert await store.add(conn, [again], version, second[None]) == 1
    assert await _labels(conn, sop) == [("CR", "CHEST", "PA", True)]
    near = await store.nearest_labelled(conn, version, second, k=3)
    assert [(n.sop_uid, round(n.distance, 4)) for n in near] == [(sop, 0.0)]
    cur = await conn.execute(
        "SELECT count(*) FROM image_embedding e JOIN image_record r ON r.id = e.record_id"
        " WHERE r.sop_uid = %s",
        (sop,),
    )
    assert (await cur.fetchone())[0] == 1


async def test_nearest_labelled_returns_only_labelled_images_nearest_first(conn):
    version, rng = _version(), np.random.default_rng(2)
    q = _unit(rng)
    labelled = [
        _rec(f"1.1.{i}", f"r{i}", modality="CT", body_part="HEAD", labelled=True) for i in range(5)
    ]
    unlabelled = [_rec(f"1.2.{i}", "p", modality="CT") for i in range(5)]
    vecs = [_near(q, 0.05 * (i + 1), rng) for i in range(5)]
    await store.add(conn, labelled, version, np.stack(vecs))
    await store.add(conn, unlabelled, version, np.stack([_near(q, 0.001, rng)] * 5))
    near = await store.nearest_labelled(conn, version, q, k=4)
    assert all(n.labelled for n in near) and len(near) == 4
    assert [n.sop_uid for n in near] == [f"1.1.{i}" for i in range(4)]
    assert [n.distance for n in near] == sorted(n.distance for n in near)
    other = await store.nearest_labelled(conn, _version(), q, k=4)
    assert other == []  # another model version's vectors are never mixed in


async def test_nearest_other_patients_returns_full_k_when_own_images_are_nearer(conn):
    version, rng = _version(), np.random.default_rng(3)
    q = _unit(rng)
    own = [_rec(f"2.1.{i}", "patient-a", study="2.1") for i in range(80)]
    await store.add(conn, own, version, np.stack([_near(q, 0.01, rng) for _ in own]))
    others = [_rec(f"2.2.{i}", f"patient-{i}", study=f"2.2.{i}") for i in range(8)]
    await store.add(conn, others, version, np.stack([_near(q, 0.2, rng) for _ in others]))
    noise = [_rec(f"2.3.{i}", f"noise-{i % 9}", study="2.3") for i in range(300)]
    await store.add(conn, noise, version, np.stack([_unit(rng) for _ in noise]))
    near = await store.nearest_other_patients(conn, version, q, "patient-a", k=5, max_distance=1.0)
    assert len(near) == 5
    assert all(n.sop_uid.startswith("2.2.") for n in near)
    far = await store.nearest_other_patients(conn, version, q, "patient-a", k=5, max_distance=0.001)
    assert far == []


async def test_nearest_same_patient_excludes_the_study_being_checked(conn):
    version, rng = _version(), np.random.default_rng(4)
    q = _unit(rng)
    now = [_rec(f"3.1.{i}", "patient-a", study="3.1") for i in range(3)]
    prior = [_rec(f"3.2.{i}", "patient-a", study="3.2") for i in range(3)]
    stranger = [_rec("3.3.0", "patient-b", study="3.3")]
    await store.add(conn, now, version, np.stack([_near(q, 0.001, rng) for _ in now]))
    await store.add(conn, prior, version, np.stack([_near(q, 0.3, rng) for _ in prior]))
    await store.add(conn, stranger, version, _near(q, 0.001, rng)[None])
    near = await store.nearest_same_patient(
        conn, version, q, "patient-a", exclude_study_uid="3.1", k=10
    )
    assert sorted(n.sop_uid for n in near) == [f"3.2.{i}" for i in range(3)]


async def test_records_without_lists_what_a_new_version_lacks(conn):
    old, new, rng = _version(), _version(), np.random.default_rng(5)
    recs = [_rec(f"4.1.{uuid.uuid4().int % 10**9}", "p", study="4.1") for _ in range(3)]
    await store.add(conn, recs, old, np.stack([_unit(rng) for _ in recs]))
    missing = [rid for rid, png in await store.records_without(conn, new, limit=10_000)
               if png == PNG]  # fmt: skip
    assert len(missing) >= 3
    ours = await store.records_without(conn, old, limit=10_000)
    assert not {r for r, _ in ours} & set(missing[-3:])
    await store.add_embeddings(conn, new, missing, np.stack([_unit(rng) for _ in missing]))
    left = {rid for rid, _ in await store.records_without(conn, new, limit=10_000)}
    assert not left & set(missing)
    page = await store.records_without(conn, _version(), limit=2)
    assert len(page) == 2


async def test_forget_study_removes_one_source_and_its_embeddings(conn):
    version, rng = _version(), np.random.default_rng(6)
    study = f"5.{uuid.uuid4().int % 10**9}"
    ref = _rec("5.1", "ref", study=study, source="reference", modality="CR", body_part="CHEST",
               labelled=True)  # fmt: skip
    arc = _rec("5.2", "p", study=study, source="archive")
    await store.add(conn, [ref, arc], version, np.stack([_unit(rng), _unit(rng)]))
    assert await store.forget_study(conn, study, source="reference") == 1
    cur = await conn.execute(
        "SELECT r.source, count(e.*) FROM image_record r LEFT JOIN image_embedding e"
        " ON e.record_id = r.id WHERE r.study_uid = %s GROUP BY 1",
        (study,),
    )
    assert await cur.fetchall() == [("archive", 1)]
    assert await store.forget_study(conn, study) == 1
    assert await store.forget_study(conn, study) == 0


async def test_library_listing_counts_labels_per_model_version(conn):
    v1, v2, rng = _version(), _version(), np.random.default_rng(7)
    study = f"6.{uuid.uuid4().int % 10**9}"
    recs = [
        _rec(f"{study}.{i}", "ref", study=study, source="reference", modality="MR",
             body_part="KNEE", laterality="L", view="sagittal", labelled=True)
        for i in range(3)
    ]  # fmt: skip
    await store.add(conn, recs, v1, np.stack([_unit(rng) for _ in recs]))
    await store.add(conn, recs[:1], v2, _unit(rng)[None])
    counts = await image_references.label_counts(conn, modality="MR", body_part="KNEE")
    mine = {(c.model_version, c.images) for c in counts if c.model_version in (v1, v2)}
    assert mine == {(v1, 3), (v2, 1)}
    total, page = await image_references.list_images(
        conn, source="reference", modality="MR", body_part="KNEE", limit=2
    )
    assert total >= 3 and len(page) == 2
    _, everything = await image_references.list_images(conn, modality="MR", body_part="KNEE",
                                                       limit=500)  # fmt: skip
    first = next(i for i in everything if i.sop_uid == recs[0].sop_uid)
    assert first.model_versions == sorted([v1, v2]) and first.laterality == "L"
    assert first.view == "sagittal" and first.source == "reference"
    _, archive = await image_references.list_images(conn, source="archive", body_part="KNEE")
    assert not {i.sop_uid for i in archive} & {r.sop_uid for r in recs}
