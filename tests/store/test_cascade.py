"""Embedder cascade through the stored library: each model's vectors under its own version, the
second model asked only when the first is unsure (real models, real photos, real pgvector)."""

from __future__ import annotations

import json
import shutil
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from service.config import DecisionSettings, LimitSettings, ModelSettings, SearchSettings
from service.models.cards import BUNDLED_DIR
from service.models.fusion import load_fusion
from service.models.registry import ModelRegistry
from service.store.pool import reuse
from service.store.products import Product
from service.verify.pills.catalog import Ingredient
from service.vision.pills.engine import PillEngine
from service.workflows.pills.enrol import enrol_products
from service.workflows.pills.service import PillService
from tests.conftest import SHARED_DATA

PILLS = SHARED_DATA / "pills"
SECOND = "efficientnet-lite0-raw"  # a second card on the same network: no head applies to it


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled models plus a second embedder card (the head is trained for the first)."""
    out = tmp_path_factory.mktemp("models")
    for f in BUNDLED_DIR.iterdir():
        shutil.copy(f, out / f.name)
    first = out / "efficientnet-lite0.card.json"
    card = json.loads(first.read_text())
    card["version"] += "-cascade-test"  # its own model version: indexes no other test made
    first.write_text(json.dumps(card))
    card["id"] = SECOND
    card["version"] = card["version"].replace("efficientnet-lite0", SECOND)
    (out / f"{SECOND}.card.json").write_text(json.dumps(card))
    return out


def _service(model_dir: Path, margin: float, search: SearchSettings | None = None) -> PillService:
    models = ModelSettings(dir=model_dir, cascade=[SECOND], cascade_margin=margin, ocr=False)
    registry = ModelRegistry(models).load()
    engine = PillEngine(registry, LimitSettings())
    return PillService(engine, DecisionSettings(), load_fusion(model_dir), search=search)


async def _enrol_two(conn, service: PillService) -> None:  # type: ignore[no-untyped-def]
    entries = [
        (
            Product(id=pid, name=name, ingredients=[Ingredient(name, "1 mg")]),
            [("photo_1.jpg", (PILLS / pid / "photo_1.jpg").read_bytes())],
        )
        for pid, name in (("ndc_00093-3147-01", "CEPHALEXIN"), ("ndc_60505-1308-01", "CIPRO"))
    ]
    await enrol_products(service, reuse(conn), entries)


async def test_each_embedder_stores_and_searches_its_own_vectors(conn, model_dir) -> None:  # type: ignore[no-untyped-def]
    service = _service(
        model_dir, margin=1.0
    )  # a score is always < 1: the second model always looks
    await _enrol_two(conn, service)
    cur = await conn.execute(
        "SELECT model_version, vector_dims(embedding), count(*) FROM reference_embedding"
        " GROUP BY 1, 2 ORDER BY 1"
    )
    rows = {version: (dims, n) for version, dims, n in await cur.fetchall()}
    second = service.engine.registry.embedding_version(SECOND)
    assert rows[service.model_version][0] == 128  # first model + its trained head
    assert rows[second][0] == 1280  # the second model's own, raw vectors
    assert rows[service.model_version][1] == rows[second][1]  # the same views of each image

    photo = (PILLS / "ndc_00093-3147-01" / "photo_2.jpg").read_bytes()
    calls = service.engine.registry.latency()[SECOND]["calls"]
    open_now = [0]
    held_while_restaging: list[int] = []

    @asynccontextmanager
    async def connect():  # type: ignore[no-untyped-def]
        open_now[0] += 1
        try:
            yield conn
        finally:
            open_now[0] -= 1

    restage = service.engine.restage

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        held_while_restaging.append(open_now[0])
        return restage(*args, **kwargs)

    service.engine.restage = spy  # type: ignore[method-assign]
    _, ranked = await service.identify(connect, photo)
    best = ranked[0].candidates[0]
    assert best.product_id == "ndc_00093-3147-01"
    assert best.evidence["cascade_model"] == SECOND
    assert held_while_restaging == [0]  # the second model ran with no connection taken
    assert service.engine.registry.latency()[SECOND]["calls"] == calls + 1
    # the cost per model is in /metrics too
    count = REGISTRY.get_sample_value("verity_model_inference_seconds_count", {"model": SECOND})
    assert count is not None and count >= 1


async def test_second_embedder_is_not_asked_when_the_first_is_sure(conn, model_dir) -> None:  # type: ignore[no-untyped-def]
    service = _service(model_dir, margin=0.0)  # always sure
    await _enrol_two(conn, service)
    photo = (PILLS / "ndc_00093-3147-01" / "photo_2.jpg").read_bytes()
    calls = service.engine.registry.latency()[SECOND]["calls"]
    _, ranked = await service.identify(reuse(conn), photo)
    assert ranked[0].candidates[0].product_id == "ndc_00093-3147-01"
    assert "cascade_model" not in ranked[0].candidates[0].evidence
    assert service.engine.registry.latency()[SECOND]["calls"] == calls


async def test_configured_hnsw_settings_build_the_indexes(conn, model_dir) -> None:  # type: ignore[no-untyped-def]
    search = SearchSettings(hnsw_m=8, hnsw_ef_construction=32)
    service = _service(model_dir, margin=1.0, search=search)
    await _enrol_two(conn, service)
    cur = await conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'reference_embedding_hnsw_%%'"
        " AND indexdef LIKE %s",
        ("%-cascade-test%",),  # this module's model versions only (other tests commit theirs)
    )
    defs = [r[0] for r in await cur.fetchall()]
    assert len(defs) == 2  # one per embedder of the cascade
    assert all("m='8'" in d and "ef_construction='32'" in d for d in defs), defs
