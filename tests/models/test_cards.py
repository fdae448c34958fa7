"""Every model card's sha256 matches its file; the registry loads and reports versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.config import ModelSettings
from service.errors import ModelNotLoaded
from service.models.cards import all_cards, sha256_file
from service.models.embedder import embed
from service.models.registry import ModelRegistry


def test_every_card_matches_its_files() -> None:
    cards = all_cards()
    assert {c.id for c in cards} >= {"efficientnet-lite0", "rapidocr-ppocrv4"}
    for card in cards:
        assert card.licence == "Apache-2.0"
        for path, sha in card.files.items():
            assert Path(path).is_file(), path
            assert sha256_file(Path(path)) == sha, f"{card.id}: {path} changed"
        if card.id == "efficientnet-lite0":
            assert card.version == f"efficientnet-lite0@{next(iter(card.files.values()))[:12]}"


def test_registry_status_and_embedding() -> None:
    registry = ModelRegistry(ModelSettings(ocr=False, head=None, intra_op_threads=1))
    assert registry.status() == [{"name": "efficientnet-lite0", "version": None, "loaded": False}]
    with pytest.raises(ModelNotLoaded):
        registry.get("efficientnet-lite0")
    registry.load()
    (status,) = registry.status()
    assert status["loaded"] and str(status["version"]).startswith("efficientnet-lite0@")
    crops = [np.full((100, 60, 3), v, np.uint8) for v in (30, 220)]
    out = embed(registry, "efficientnet-lite0", crops)
    assert out.shape == (2, 1280)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert registry.latency()["efficientnet-lite0"]["calls"] == 1.0


def test_head_projects_to_its_card_dim() -> None:
    registry = ModelRegistry(ModelSettings(ocr=False, intra_op_threads=1)).load()
    names = [s["name"] for s in registry.status()]
    assert names == ["efficientnet-lite0", "pill-head-wccn"]
    version = registry.embedding_version("efficientnet-lite0")
    assert version.startswith("efficientnet-lite0@") and "+pill-head-wccn@" in version
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (120, 80, 3), dtype=np.uint8) for _ in range(3)]
    out = embed(registry, "efficientnet-lite0", crops)
    assert out.shape == (3, 128)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


def test_unknown_embedder_is_model_not_loaded() -> None:
    with pytest.raises(ModelNotLoaded):
        ModelRegistry(ModelSettings(embedder="no-such-model", ocr=False)).load()
