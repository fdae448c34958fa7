"""Identification endpoints: which library product is each pill in a photo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile

from service.api.schemas import CandidateOut, CompareOut, EmbeddingOut, IdentifyOut, PillOut
from service.api.uploads import read_image_upload
from service.auth.deps import CanReadLibrary, GuardedRoute
from service.deps import Pills, Settings, connection

router = APIRouter(prefix="/v1", tags=["identification"], route_class=GuardedRoute)

TOP_CANDIDATES = 5


@router.post("/identify", summary="Rank library products for every pill in a photo")
async def identify(
    caller: CanReadLibrary,
    request: Request,
    photo: Annotated[UploadFile, File(description="JPEG, PNG, WebP or HEIC photo")],
    pills: Pills,
    settings: Settings,
) -> IdentifyOut:
    data = await read_image_upload(photo, settings.limits)
    # The models run first; a connection is taken only for each database step.
    result, ranked = await pills.identify(lambda: connection(request), data)
    return IdentifyOut(
        model_version=pills.model_version,
        pill_count=len(ranked),
        timings_ms={k: round(v, 1) for k, v in result.timings.items()},
        pills=[
            PillOut(
                index=r.pill.index,
                bbox=r.pill.features.get("bbox"),
                imprint_read=r.pill.imprint_read,
                imprint_confidence=round(r.pill.imprint_confidence, 3),
                features={k: v for k, v in r.pill.features.items() if k != "bbox"},
                candidates=[
                    CandidateOut(
                        product_id=c.product_id,
                        name=c.product.name,
                        score=c.score,
                        band=c.band,
                        evidence=c.evidence,
                    )
                    for c in r.candidates[:TOP_CANDIDATES]
                ],  # fmt: skip
            )
            for r in ranked
        ],
    )


@router.post("/embeddings", summary="Embedding vector of the largest pill in an image")
async def embeddings(
    caller: CanReadLibrary,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP or HEIC image")],
    pills: Pills,
    settings: Settings,
) -> EmbeddingOut:
    data = await read_image_upload(image, settings.limits)
    vector = await pills.embed_photo(data)
    return EmbeddingOut(
        model=pills.engine.embedder,
        model_version=pills.model_version,
        dim=int(vector.shape[0]),
        embedding=[round(float(x), 7) for x in vector],
    )


@router.post("/compare", summary="Do two images show the same product?")
async def compare(
    caller: CanReadLibrary,
    image_a: Annotated[UploadFile, File(description="the pill to check")],
    image_b: Annotated[UploadFile, File(description="a reference image of the product")],
    pills: Pills,
    settings: Settings,
) -> CompareOut:
    a = await read_image_upload(image_a, settings.limits)
    b = await read_image_upload(image_b, settings.limits)
    cosine, euclid, fused = await pills.compare(a, b)
    return CompareOut(
        model_version=pills.model_version,
        cosine_similarity=round(cosine, 6),
        euclidean_distance=round(euclid, 6),
        combined_score=fused.score,
        band=fused.band,
        evidence=fused.evidence,
    )
