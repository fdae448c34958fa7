"""Reference library SQL: products, reference images, and their embeddings per model version."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from service.errors import ProductExists, UnknownProduct
from service.verify.pills.catalog import Ingredient, clinical_drug_key, same_clinical_drug
from service.verify.pills.orders import OrderedDrug, ndc_product_code


@dataclass
class Product:
    id: str
    name: str | None = None
    ndcs: list[str] = field(default_factory=list)
    rxcui: str | None = None
    ingredients: list[Ingredient] = field(default_factory=list)
    dose_form: str | None = None
    imprint: str | None = None
    imprint_source: str | None = None
    colors: list[str] = field(default_factory=list)
    shape: str | None = None
    size_mm: float | None = None
    labeler: str | None = None

    @property
    def clinical_drug(self) -> str | None:
        return clinical_drug_key(self.ingredients)


_COLUMNS = (
    "id, name, ndcs, rxcui, ingredients, dose_form, imprint, imprint_source, colors, shape, "
    "size_mm, labeler"
)


def _row_to_product(row: dict[str, Any]) -> Product:
    ingredients = [Ingredient(i["name"], i.get("strength")) for i in row["ingredients"]]
    return Product(**{**row, "ingredients": ingredients})


def _params(p: Product) -> tuple[Any, ...]:
    ingredients = json.dumps([{"name": i.name, "strength": i.strength} for i in p.ingredients])
    ndc_products = sorted({c for n in p.ndcs if (c := ndc_product_code(n))})
    return (
        p.id, p.name, p.ndcs, ndc_products, p.rxcui, ingredients, p.clinical_drug, p.dose_form,
        p.imprint, p.imprint_source, p.colors, p.shape, p.size_mm, p.labeler,
    )  # fmt: skip


_INSERT = """
INSERT INTO product (id, name, ndcs, ndc_products, rxcui, ingredients, clinical_drug, dose_form,
                     imprint, imprint_source, colors, shape, size_mm, labeler)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_UPSERT_TAIL = """
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, ndcs = EXCLUDED.ndcs,
    ndc_products = EXCLUDED.ndc_products,
    rxcui = EXCLUDED.rxcui, ingredients = EXCLUDED.ingredients,
    clinical_drug = EXCLUDED.clinical_drug, dose_form = EXCLUDED.dose_form,
    imprint = EXCLUDED.imprint, imprint_source = EXCLUDED.imprint_source,
    colors = EXCLUDED.colors, shape = EXCLUDED.shape, size_mm = EXCLUDED.size_mm,
    labeler = EXCLUDED.labeler, updated_at = now()
"""


async def create_product(conn: psycopg.AsyncConnection, product: Product) -> None:
    """Insert a new product; ProductExists if the id is taken."""
    try:
        async with conn.transaction():
            await conn.execute(_INSERT, _params(product))
    except psycopg.errors.UniqueViolation:
        raise ProductExists(f"product {product.id!r} already exists") from None


async def upsert_product(conn: psycopg.AsyncConnection, product: Product) -> None:
    await conn.execute(_INSERT + _UPSERT_TAIL, _params(product))


async def get_product(conn: psycopg.AsyncConnection, product_id: str) -> Product:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM product WHERE id = %s", (product_id,))
        row = await cur.fetchone()
    if row is None:
        raise UnknownProduct(f"no product {product_id!r}")
    return _row_to_product(row)


async def replace_product(conn: psycopg.AsyncConnection, product: Product) -> None:
    """Overwrite every field of an existing product; UnknownProduct if there is none."""
    await get_product(conn, product.id)
    await upsert_product(conn, product)


async def delete_product(conn: psycopg.AsyncConnection, product_id: str) -> None:
    cur = await conn.execute("DELETE FROM product WHERE id = %s", (product_id,))
    if cur.rowcount == 0:
        raise UnknownProduct(f"no product {product_id!r}")


async def list_products(
    conn: psycopg.AsyncConnection,
    *,
    text: str | None = None,
    ndc: str | None = None,
    rxcui: str | None = None,
    clinical_drug: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Product]:
    """Filter by NDC, RxCUI, clinical drug key, or free text over name and imprint."""
    where, args = ["TRUE"], []
    if ndc:
        where.append("%s = ANY(ndcs)")
        args.append(ndc)
    if rxcui:
        where.append("rxcui = %s")
        args.append(rxcui)
    if clinical_drug:
        where.append("clinical_drug = %s")
        args.append(clinical_drug)
    if text:
        where.append("(name ILIKE %s OR imprint %% %s OR id ILIKE %s)")
        args += [f"%{text}%", text, f"%{text}%"]
    query = (
        f"SELECT {_COLUMNS} FROM product WHERE {' AND '.join(where)} ORDER BY id LIMIT %s OFFSET %s"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query.encode(), (*args, limit, offset))
        return [_row_to_product(r) for r in await cur.fetchall()]


async def add_reference_image(
    conn: psycopg.AsyncConnection,
    product_id: str,
    *,
    sha256: str,
    width: int,
    height: int,
    side: str = "unknown",
    source: str | None = None,
    image: bytes | None = None,
) -> tuple[int, bool]:
    """Store a reference image once per product; returns (image id, newly added)."""
    await get_product(conn, product_id)
    cur = await conn.execute(
        """INSERT INTO reference_image (product_id, side, sha256, source, width, height, image)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (product_id, sha256) DO NOTHING RETURNING id""",
        (product_id, side, sha256, source, width, height, image),
    )
    row = await cur.fetchone()
    if row is not None:
        return int(row[0]), True
    cur = await conn.execute(
        "SELECT id FROM reference_image WHERE product_id = %s AND sha256 = %s",
        (product_id, sha256),
    )
    existing = await cur.fetchone()
    assert existing is not None
    return int(existing[0]), False


async def delete_reference_image(
    conn: psycopg.AsyncConnection, product_id: str, image_id: int
) -> None:
    cur = await conn.execute(
        "DELETE FROM reference_image WHERE id = %s AND product_id = %s", (image_id, product_id)
    )
    if cur.rowcount == 0:
        raise UnknownProduct(f"product {product_id!r} has no image {image_id}")


async def list_reference_images(
    conn: psycopg.AsyncConnection, product_id: str
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """SELECT id, side, sha256, source, width, height, created_at
               FROM reference_image WHERE product_id = %s ORDER BY id""",
            (product_id,),
        )
        return await cur.fetchall()


async def reference_images_with_pixels(
    conn: psycopg.AsyncConnection,
) -> list[tuple[int, str, str, bytes]]:
    """Every stored reference image (id, product, side, bytes), for re-embedding."""
    cur = await conn.execute(
        "SELECT id, product_id, side, image FROM reference_image WHERE image IS NOT NULL"
        " ORDER BY id"
    )
    return [(int(i), str(p), str(side), bytes(b)) for i, p, side, b in await cur.fetchall()]


async def set_ocr_imprint(conn: psycopg.AsyncConnection, product_id: str, imprint: str) -> None:
    """Record an imprint read from a reference image, unless the label already gives one."""
    await conn.execute(
        """UPDATE product SET imprint = %s, imprint_source = 'ocr', updated_at = now()
           WHERE id = %s AND (imprint IS NULL OR imprint_source = 'ocr')""",
        (imprint, product_id),
    )


async def products_for_order(conn: psycopg.AsyncConnection, drug: OrderedDrug) -> list[Product]:
    """Every library product of the ordered clinical drug: matched by RxCUI, NDC product code
    or ingredients + strengths, then widened to all products with the same clinical drug."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {_COLUMNS} FROM product
                WHERE rxcui = ANY(%s) OR ndc_products && %s OR clinical_drug = %s""",
            (drug.rxcuis, drug.ndc_products, drug.clinical_drug),
        )
        direct = [_row_to_product(r) for r in await cur.fetchall()]
        keys = {p.clinical_drug for p in direct if p.clinical_drug}
        await cur.execute(
            f"SELECT {_COLUMNS} FROM product WHERE clinical_drug = ANY(%s)", (sorted(keys),)
        )
        widened = [_row_to_product(r) for r in await cur.fetchall()]
    found = {p.id: p for p in direct}
    for p in widened:
        if any(same_clinical_drug(p.clinical_drug, d.clinical_drug, p.dose_form, d.dose_form)
               for d in direct):  # fmt: skip
            found.setdefault(p.id, p)
    if drug.dose_form:
        found = {k: p for k, p in found.items() if not p.dose_form or p.dose_form == drug.dose_form}
    return sorted(found.values(), key=lambda p: p.id)


async def get_products(conn: psycopg.AsyncConnection, ids: list[str]) -> dict[str, Product]:
    """The products with these ids that exist (missing ids are simply absent)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM product WHERE id = ANY(%s)", (ids,))
        return {r["id"]: _row_to_product(r) for r in await cur.fetchall()}


async def products_with_imprint_like(
    conn: psycopg.AsyncConnection, text: str, *, limit: int = 10, min_similarity: float = 0.3
) -> list[str]:
    """Product ids whose imprint resembles text read by OCR (pg_trgm), most similar first."""
    cur = await conn.execute(
        """SELECT id FROM product
           WHERE imprint IS NOT NULL AND similarity(imprint, %s) >= %s
           ORDER BY similarity(imprint, %s) DESC, id LIMIT %s""",
        (text, min_similarity, text, limit),
    )
    return [str(r[0]) for r in await cur.fetchall()]
