"""Reference library endpoints: products and their reference images."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Response, UploadFile

from service.api.schemas import (
    OFFSET_MAX,
    ROW_ID_MAX,
    EnrolledOut,
    ProductId,
    ProductIn,
    ProductOut,
    SafeText,
)
from service.api.uploads import read_image_upload
from service.auth.deps import CanManageLibrary, require_scopes
from service.deps import DbConn, Pills, Settings
from service.errors import RequestInvalid
from service.store import library

router = APIRouter(prefix="/v1/library", tags=["library"])
READ = [Depends(require_scopes("system/Library.rs"))]
WRITE = [Depends(require_scopes("system/Library.cud"))]


@router.get("/products", summary="List or search products", dependencies=READ)
async def list_products(
    conn: DbConn,
    q: Annotated[SafeText | None, Query(max_length=100, description="name, id or imprint")] = None,
    ndc: Annotated[SafeText | None, Query(max_length=20)] = None,
    rxcui: Annotated[SafeText | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
) -> list[ProductOut]:
    found = await library.list_products(
        conn, text=q, ndc=ndc, rxcui=rxcui, limit=limit, offset=offset
    )
    return [ProductOut.of(p) for p in found]


@router.post("/products", status_code=201, summary="Add a product", dependencies=WRITE)
async def create_product(body: ProductIn, conn: DbConn) -> ProductOut:
    await library.create_product(conn, body.to_product())
    return ProductOut.of(await library.get_product(conn, body.id))


@router.get(
    "/products/{product_id}", summary="A product with its reference images", dependencies=READ
)
async def get_product(product_id: ProductId, conn: DbConn) -> ProductOut:
    product = await library.get_product(conn, product_id)
    return ProductOut.of(product, await library.list_reference_images(conn, product_id))


@router.put("/products/{product_id}", summary="Replace a product's data", dependencies=WRITE)
async def replace_product(product_id: ProductId, body: ProductIn, conn: DbConn) -> ProductOut:
    if body.id != product_id:
        raise RequestInvalid("the body's id must equal the id in the path")
    await library.replace_product(conn, body.to_product())
    return ProductOut.of(await library.get_product(conn, product_id))


@router.delete(
    "/products/{product_id}", status_code=204, summary="Delete a product", dependencies=WRITE
)
async def delete_product(product_id: ProductId, conn: DbConn) -> Response:
    await library.delete_product(conn, product_id)
    return Response(status_code=204)


@router.post("/products/{product_id}/images", status_code=201, summary="Enrol a reference image")
async def add_image(
    _: CanManageLibrary,  # was unguarded (issue 9, defect 1; the guard branch fixes it too)
    product_id: ProductId,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or HEIC reference photo")],
    conn: DbConn,
    pills: Pills,
    settings: Settings,
    side: Annotated[Literal["front", "back", "unknown"], Form()] = "front",
) -> EnrolledOut:
    data = await read_image_upload(image, settings.limits)
    await library.get_product(conn, product_id)  # 404 before any model work
    async with conn.transaction():
        result = await pills.enrol(conn, product_id, data, side=side, source=image.filename)
    return EnrolledOut(
        image_id=result.image_id, added=result.added, views=result.views,
        imprint_read=result.imprint_read, model_version=pills.model_version,
    )  # fmt: skip


@router.delete(
    "/products/{product_id}/images/{image_id}",
    status_code=204,
    summary="Remove an image",
    dependencies=WRITE,
)
async def delete_image(
    product_id: ProductId, image_id: Annotated[int, Path(ge=1, le=ROW_ID_MAX)], conn: DbConn
) -> Response:
    await library.delete_reference_image(conn, product_id, image_id)
    return Response(status_code=204)
