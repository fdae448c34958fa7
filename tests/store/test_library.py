import numpy as np
import pytest

from service.errors import ProductExists, UnknownProduct
from service.store import products, vectors
from service.store.products import Product
from service.verify.pills.catalog import Ingredient

MODEL = "test-embedder@0001"


def _product(pid, name="METFORMIN", strength="500 mg", **kw):
    return Product(id=pid, name=name, ingredients=[Ingredient(name, strength)], **kw)


async def test_create_get_list_delete(conn):
    await products.create_product(conn, _product("a", ndcs=["00093-1048-01"], imprint="93 48"))
    await products.create_product(conn, _product("b", name="SIMVASTATIN", strength="40 mg"))
    with pytest.raises(ProductExists):
        await products.create_product(conn, _product("a"))
    got = await products.get_product(conn, "a")
    assert got.ndcs == ["00093-1048-01"] and got.ingredients == [Ingredient("METFORMIN", "500 mg")]
    assert [p.id for p in await products.list_products(conn, ndc="00093-1048-01")] == ["a"]
    assert [p.id for p in await products.list_products(conn, text="simva")] == ["b"]
    assert [p.id for p in await products.list_products(conn, text="93 4B")] == ["a"]  # trigram
    key = got.clinical_drug
    assert [p.id for p in await products.list_products(conn, clinical_drug=key)] == ["a"]
    await products.delete_product(conn, "a")
    with pytest.raises(UnknownProduct):
        await products.get_product(conn, "a")
    with pytest.raises(UnknownProduct):
        await products.delete_product(conn, "a")


async def test_reference_image_added_once(conn):
    await products.create_product(conn, _product("a"))
    first = await products.add_reference_image(conn, "a", sha256="x" * 64, width=10, height=10)
    again = await products.add_reference_image(conn, "a", sha256="x" * 64, width=10, height=10)
    assert first[1] is True and again == (first[0], False)
    with pytest.raises(UnknownProduct):
        await products.add_reference_image(conn, "nope", sha256="y" * 64, width=1, height=1)


async def test_ocr_imprint_never_overrides_label(conn):
    await products.create_product(conn, _product("a", imprint="M 10", imprint_source="label"))
    await products.create_product(conn, _product("b"))
    await products.set_ocr_imprint(conn, "a", "W 10")
    await products.set_ocr_imprint(conn, "b", "TEVA")
    assert (await products.get_product(conn, "a")).imprint == "M 10"
    b = await products.get_product(conn, "b")
    assert (b.imprint, b.imprint_source) == ("TEVA", "ocr")


async def _seed(conn, n_products, dim, rng, model=MODEL):
    await vectors.ensure_index(conn, model, dim)
    centers = {}
    for i in range(n_products):
        pid = f"p{i:03d}"
        await products.create_product(conn, _product(pid))
        image_id, _ = await products.add_reference_image(
            conn, pid, sha256=f"{i:064d}", width=1, height=1
        )
        c = rng.normal(size=dim).astype(np.float32)
        centers[pid] = c
        views = [
            (v, c + 0.05 * rng.normal(size=dim).astype(np.float32), {"v": v}, None)
            for v in range(3)
        ]
        await vectors.add_views(conn, image_id, pid, model, views)
    return centers


async def test_shortlist_finds_the_right_product_first(conn):
    rng = np.random.default_rng(7)
    centers = await _seed(conn, 60, 16, rng)
    shortlist = await vectors.nearest_products(conn, MODEL, centers["p017"], views=9)
    assert shortlist[0] == "p017" and 3 <= len(shortlist) <= 9  # 3 views per product
    views = await vectors.views_for_products(conn, MODEL, shortlist[:2])
    assert {v.product_id for v in views} == set(shortlist[:2]) and len(views) == 6


async def test_search_never_mixes_model_versions(conn):
    rng = np.random.default_rng(1)
    centers = await _seed(conn, 5, 8, rng)
    await vectors.ensure_index(conn, "other@1", 8)
    image_id, _ = await products.add_reference_image(
        conn, "p000", sha256="z" * 64, width=1, height=1
    )
    await vectors.add_views(
        conn, image_id, "p000", "other@1", [("front/rot0", centers["p003"], {}, None)]
    )
    assert await vectors.nearest_products(conn, "other@1", centers["p003"], views=10) == ["p000"]
    other = await vectors.views_for_products(conn, "other@1")
    assert [(v.product_id, v.image_id) for v in other] == [("p000", str(image_id))]
    assert len(await vectors.views_for_products(conn, MODEL, ["p003"])) == 3


async def test_hnsw_index_is_used(conn):
    rng = np.random.default_rng(3)
    await _seed(conn, 30, 16, rng)
    # Leave the planner two ways only (sequential scan, disabled, or the HNSW index) so the
    # check is about whether the expression index matches the query, not about statistics.
    await conn.execute("DROP INDEX reference_embedding_product_idx")  # rolled back with the test
    await conn.execute("SET LOCAL enable_seqscan = off")
    plan = await (
        await conn.execute(
            "EXPLAIN SELECT product_id FROM reference_embedding WHERE model_version = 'test-embedder@0001' "
            "ORDER BY (embedding::vector(16)) <=> (SELECT embedding::vector(16) FROM reference_embedding LIMIT 1) LIMIT 5"
        )
    ).fetchall()
    assert "reference_embedding_hnsw_" in "\n".join(r[0] for r in plan)


async def test_products_with_a_similar_imprint(conn):
    await products.create_product(conn, _product("teva", imprint="TEVA 5729"))
    await products.create_product(conn, _product("m10", imprint="M 10"))
    await products.create_product(conn, _product("none"))
    assert await products.products_with_imprint_like(conn, "TEVA 5728") == ["teva"]
    assert await products.products_with_imprint_like(conn, "XYZ") == []
