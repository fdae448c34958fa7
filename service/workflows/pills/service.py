"""Pill identification over the stored library: the engine (CPU, in worker threads) joined to
pgvector (shortlist) and the product table, and the loader that builds it from settings. Used
by the API, the CLI, the demo and the evaluation.

Models run without a database connection: callers pass a `Connect` factory, and a connection
is taken only around each database step (a cascade embedder runs between two of them).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import anyio
import numpy as np
import psycopg

from service.config import DecisionSettings, SearchSettings, Settings
from service.errors import ProductNotEnrolled
from service.models.fusion import load_fusion
from service.models.registry import ModelRegistry
from service.store import products, vectors
from service.store.pool import Connect
from service.store.products import Product
from service.verify.pills.measurements import QueryPill, ReferenceView
from service.verify.pills.ranking import DEFAULT_FUSION, FusionModel, rank, unsure
from service.verify.pills.results import Candidate, ProductRef
from service.vision.pills.decode import decode_image
from service.vision.pills.engine import PhotoResult, PillEngine


def product_ref(p: Product) -> ProductRef:
    """A stored product as results name it (with its clinical-drug key, for grouping)."""
    return ProductRef(p.id, p.name, tuple(p.ndcs), p.rxcui, p.clinical_drug)


@dataclass(frozen=True)
class Enrolled:
    image_id: int
    added: bool
    views: int
    imprint_read: str | None


@dataclass(frozen=True)
class PreparedReference:
    """A reference image measured by the models, ready to store (no database touched yet)."""

    data: bytes
    sha256: str
    width: int
    height: int
    side: str
    views: list[ReferenceView]

    @property
    def imprint_read(self) -> str | None:
        return next((v.imprint_read for v in self.views if v.imprint_read), None)


@dataclass(frozen=True)
class RankedPill:
    pill: QueryPill
    candidates: list[Candidate]


class PillService:
    """Long-lived (one per process): holds the engine and the fused score, and bounds
    concurrent CPU work."""

    def __init__(
        self,
        engine: PillEngine,
        decision: DecisionSettings,
        fusion: FusionModel = DEFAULT_FUSION,
        *,
        max_parallel: int = 1,
        search: SearchSettings | None = None,
    ) -> None:
        self.engine = engine
        self.decision = decision
        self.fusion = fusion
        # Shortlist: each reference image gives ~16 views, so 500 views are the ~30-50 most
        # similar products: enough that the open-set probability sees every plausible
        # competitor (products far away add ~0).
        self.search = search or SearchSettings()
        # ONNX Runtime already uses the configured intra-op threads per call.
        self._cpu = anyio.CapacityLimiter(max_parallel)

    @property
    def model_version(self) -> str:
        return self.engine.model_version

    async def analyse(self, data: bytes) -> PhotoResult:
        """Decode and describe every pill of a photo (image errors raise their VerityError)."""
        return await anyio.to_thread.run_sync(self.engine.analyse_bytes, data, limiter=self._cpu)

    async def embed_photo(self, data: bytes) -> np.ndarray:
        """Embedding of the largest pill, upright (what /v1/embeddings returns)."""
        result = await self.analyse(data)
        vector: np.ndarray = result.pills[0].embeddings[0]
        return vector

    async def prepare_reference(self, data: bytes, *, side: str = "front") -> PreparedReference:
        """Decode a reference image and compute its views (models only, no database)."""
        rgb = await anyio.to_thread.run_sync(
            decode_image, data, self.engine.limits, limiter=self._cpu
        )
        side = side if side in ("front", "back") else "unknown"
        sha = hashlib.sha256(data).hexdigest()
        views = await anyio.to_thread.run_sync(
            partial(self.engine.enrol_image, rgb, "", sha, side), limiter=self._cpu
        )
        return PreparedReference(data, sha, int(rgb.shape[1]), int(rgb.shape[0]), side, views)

    async def store_reference(
        self,
        conn: psycopg.AsyncConnection,
        product_id: str,
        ref: PreparedReference,
        *,
        source: str | None = None,
    ) -> Enrolled:
        """Store a prepared reference image with its views; record its imprint if none is
        known (database only: run it in the caller's transaction)."""
        image_id, added = await products.add_reference_image(
            conn, product_id, sha256=ref.sha256, width=ref.width, height=ref.height,
            side=ref.side, source=source, image=ref.data,
        )  # fmt: skip
        await self._store_views(conn, image_id, product_id, ref.views)
        if ref.imprint_read:
            await products.set_ocr_imprint(conn, product_id, ref.imprint_read)
        return Enrolled(image_id, added, len(ref.views), ref.imprint_read)

    async def _store_views(
        self,
        conn: psycopg.AsyncConnection,
        image_id: int,
        product_id: str,
        views: Sequence[ReferenceView],
    ) -> None:
        """Each embedder of the cascade stores its views under its own version (and index)."""
        by_version: dict[str, list[ReferenceView]] = defaultdict(list)
        for v in views:
            by_version[v.model_version or self.model_version].append(v)
        for version, group in by_version.items():
            await vectors.ensure_index(
                conn, version, int(group[0].embedding.shape[0]),
                m=self.search.hnsw_m, ef=self.search.hnsw_ef_construction,
            )  # fmt: skip
            await vectors.add_views(
                conn, image_id, product_id, version,
                ((v.view, v.embedding, v.features, v.imprint_read) for v in group),
            )  # fmt: skip

    async def reembed(self, connect: Connect) -> int:
        """Embed every stored reference image with the current model version; the models run
        with no connection held, each image's views are stored in their own short transaction."""
        async with connect() as conn:
            stored = await products.reference_images_with_pixels(conn)
        for image_id, product_id, side, data in stored:
            rgb = await anyio.to_thread.run_sync(
                decode_image, data, self.engine.limits, limiter=self._cpu
            )
            views = await anyio.to_thread.run_sync(
                partial(self.engine.enrol_image, rgb, product_id, str(image_id), side),
                limiter=self._cpu,
            )
            async with connect() as conn, conn.transaction():
                await self._store_views(conn, image_id, product_id, views)
        return len(stored)

    async def rank(
        self,
        connect: Connect,
        pill: QueryPill,
        *,
        crops: Sequence[np.ndarray] = (),
        always_include: Sequence[str] = (),
    ) -> list[Candidate]:
        """Rank with the first embedder; while unsure, with the next ones of the cascade (each
        on its own stored vectors, its model run with no connection held). `crops` are the
        pill's embedder inputs (PhotoResult.crops); without them only the first embedder runs."""
        async with connect() as conn:
            ranked = await self._rank_one(conn, pill, always_include)
        margin = self.engine.registry.settings.cascade_margin
        for name in self.engine.registry.settings.embedders[1:] if crops else ():
            if not unsure(ranked, margin):
                break
            staged = await anyio.to_thread.run_sync(
                self.engine.restage, pill, name, list(crops), limiter=self._cpu
            )
            async with connect() as conn:
                ranked = await self._rank_one(conn, staged, always_include)
            for c in ranked:
                c.evidence["cascade_model"] = name
        return ranked

    async def _rank_one(
        self, conn: psycopg.AsyncConnection, pill: QueryPill, always_include: Sequence[str]
    ) -> list[Candidate]:
        """Shortlist products by k-NN on each query embedding and by imprint text, then score
        them exactly (vectors of the pill's own model version only)."""
        version = pill.model_version or self.model_version
        ids: set[str] = set(always_include)
        for emb in pill.embeddings:
            ids.update(
                await vectors.nearest_products(
                    conn, version, emb, views=self.search.shortlist_views
                )
            )
        if pill.imprint_read:
            # Hybrid search: a legible imprint brings in products the embedding missed.
            ids.update(await products.products_with_imprint_like(conn, pill.imprint_read))
        if not ids:
            return []
        views = await vectors.views_for_products(conn, version, sorted(ids))
        found = await products.get_products(conn, sorted(ids))
        refs = {pid: product_ref(p) for pid, p in found.items()}
        return await anyio.to_thread.run_sync(
            rank, pill, views, refs, self.decision, self.fusion, limiter=self._cpu
        )

    async def compare(self, data_a: bytes, data_b: bytes) -> tuple[float, float, Candidate]:
        """One-to-one: cosine and euclidean of the two pills' embeddings, and the fused score
        that A shows the product B is a reference of."""
        photo_a = await self.analyse(data_a)
        rgb_b = await anyio.to_thread.run_sync(
            decode_image, data_b, self.engine.limits, limiter=self._cpu
        )
        views = await anyio.to_thread.run_sync(
            partial(self.engine.enrol_image, rgb_b, "b", "b"), limiter=self._cpu
        )
        pill = photo_a.pills[0]
        a, b = pill.embeddings[0], views[0].embedding
        ranked = rank(pill, views, {"b": ProductRef("b")}, self.decision, self.fusion)
        return float(a @ b), float(np.linalg.norm(a - b)), ranked[0]

    async def compare_product(
        self, connect: Connect, data: bytes, product_id: str
    ) -> tuple[float, float, Candidate]:
        """One-to-one against a stored product: the fused score over its reference views (as
        `compare` scores image B's views), cosine and euclidean to its nearest view."""
        photo = await self.analyse(data)
        pill = photo.pills[0]
        async with connect() as conn:
            product = await products.get_product(conn, product_id)  # UnknownProduct if absent
            views = await vectors.views_for_products(
                conn, pill.model_version or self.model_version, [product_id]
            )
        if not views:
            raise ProductNotEnrolled(f"product has no reference views for {self.model_version}")
        ranked = await anyio.to_thread.run_sync(
            rank, pill, views, {product_id: product_ref(product)}, self.decision, self.fusion,
            limiter=self._cpu,
        )  # fmt: skip
        a = pill.embeddings[0]
        cosine = max(float(a @ v.embedding) for v in views)
        euclid = min(float(np.linalg.norm(a - v.embedding)) for v in views)
        return cosine, euclid, ranked[0]

    async def identify(
        self, connect: Connect, data: bytes, *, always_include: Sequence[str] = ()
    ) -> tuple[PhotoResult, list[RankedPill]]:
        """Every pill in the photo with its ranked candidates (the photo analysed before any
        connection is taken)."""
        result = await self.analyse(data)
        ranked = [
            RankedPill(p, await self.rank(connect, p, crops=c, always_include=always_include))
            for p, c in zip(result.pills, result.crops, strict=True)
        ]
        return result, ranked


def load_pill_service(settings: Settings) -> PillService:
    """Load every pill model once (the app, the CLI, the demo and the evaluation share this)."""
    registry = ModelRegistry(settings.models).load()
    engine = PillEngine(registry, settings.limits)
    return PillService(
        engine, settings.decision, load_fusion(settings.models.dir), search=settings.search
    )
