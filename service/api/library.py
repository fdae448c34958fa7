"""Reference library endpoints: products and their reference images."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile

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
from service.auth.deps import CanManageLibrary, CanReadLibrary, GuardedRoute
from service.deps import DbConn, Pills, Settings, connection
from service.errors import RequestInvalid
from service.store import products

router = APIRouter(prefix="/v1/library", tags=["library"], route_class=GuardedRoute)


@router.get("/products", summary="List or search products")
async def list_products(
    caller: CanReadLibrary,
    conn: DbConn,
    q: Annotated[SafeText | None, Query(max_length=100, description="name, id or imprint")] = None,
    ndc: Annotated[SafeText | None, Query(max_length=20)] = None,
    rxcui: Annotated[SafeText | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
) -> list[ProductOut]:
    found = await products.list_products(
        conn, text=q, ndc=ndc, rxcui=rxcui, limit=limit, offset=offset
    )
    return [ProductOut.of(p) for p in found]


@router.post("/products", status_code=201, summary="Add a product")
async def create_product(caller: CanManageLibrary, body: ProductIn, conn: DbConn) -> ProductOut:
    await products.create_product(conn, body.to_product())
    return ProductOut.of(await products.get_product(conn, body.id))


@router.get("/products/{product_id}", summary="A product with its reference images")
async def get_product(product_id: ProductId, caller: CanReadLibrary, conn: DbConn) -> ProductOut:
    product = await products.get_product(conn, product_id)
    return ProductOut.of(product, await products.list_reference_images(conn, product_id))


@router.put("/products/{product_id}", summary="Replace a product's data")
async def replace_product(
    product_id: ProductId, caller: CanManageLibrary, body: ProductIn, conn: DbConn
) -> ProductOut:
    if body.id != product_id:
        raise RequestInvalid("the body's id must equal the id in the path")
    await products.replace_product(conn, body.to_product())
    return ProductOut.of(await products.get_product(conn, product_id))


@router.delete("/products/{product_id}", status_code=204, summary="Delete a product")
async def delete_product(product_id: ProductId, caller: CanManageLibrary, conn: DbConn) -> Response:
    await products.delete_product(conn, product_id)
    return Response(status_code=204)


@router.post("/products/{product_id}/images", status_code=201, summary="Enrol a reference image")
async def add_image(
    request: Request,
    product_id: ProductId,
    caller: CanManageLibrary,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or HEIC reference photo")],
    pills: Pills,
    settings: Settings,
    side: Annotated[Literal["front", "back", "unknown"], Form()] = "front",
) -> EnrolledOut:
    data = await read_image_upload(image, settings.limits)
    async with connection(request) as conn:
        await products.get_product(conn, product_id)  # 404 before any model work
    prepared = await pills.prepare_reference(data, side=side)  # no connection held meanwhile
    async with connection(request) as conn, conn.transaction():
        result = await pills.store_reference(conn, product_id, prepared, source=image.filename)
    return EnrolledOut(
        image_id=result.image_id, added=result.added, views=result.views,
        imprint_read=result.imprint_read, model_version=pills.model_version,
    )  # fmt: skip


@router.delete(
    "/products/{product_id}/images/{image_id}",
    status_code=204,
    summary="Remove an image",
)
async def delete_image(
    product_id: ProductId,
    image_id: Annotated[int, Path(ge=1, le=ROW_ID_MAX)],
    caller: CanManageLibrary,
    conn: DbConn,
) -> Response:
    await products.delete_reference_image(conn, product_id, image_id)
    return Response(status_code=204)
