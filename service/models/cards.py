"""Model cards: the JSON beside each model file is the single source of its identity and hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

BUNDLED_DIR = Path(__file__).parent / "bundled"


@dataclass(frozen=True)
class ModelCard:
    """What a model is, where its files are, and the sha256 each must have."""

    id: str
    version: str
    licence: str
    files: dict[str, str]  # absolute path -> expected sha256
    raw: dict[str, Any]


def rapidocr_dir() -> Path:
    """Folder of the OCR models inside the installed rapidocr-onnxruntime wheel."""
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent


def load_card(card_path: Path) -> ModelCard:
    """Parse a card; relative file paths resolve beside the card, OCR ones inside the wheel."""
    raw = json.loads(card_path.read_text())
    base = rapidocr_dir() if "package" in raw else card_path.parent
    files = {str(base / f["path"]): str(f["sha256"]) for f in raw["files"]}
    return ModelCard(raw["id"], raw["version"], raw["licence"], files, raw)


def all_cards(model_dir: Path | None = None) -> list[ModelCard]:
    """Every card in the bundled folder (or a mounted model folder)."""
    folder = model_dir or BUNDLED_DIR
    return [load_card(p) for p in sorted(folder.glob("*.card.json"))]


def sha256_file(path: Path) -> str:
    """Streamed sha256, so large model files are not read into memory at once."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def card_of_version(version: str, model_dir: Path | None = None) -> tuple[ModelCard, str] | None:
    """The card of one model version and its Markdown (the `.card.md` beside the JSON, else the
    JSON itself as a code block), for the model card Verity writes to the EHR; None if no card."""
    folder = model_dir or BUNDLED_DIR
    for path in sorted(folder.glob("*.card.json")):
        card = load_card(path)
        if card.version != version:
            continue
        md = path.with_name(path.name.removesuffix(".json") + ".md")
        text = md.read_text() if md.is_file() else f"```json\n{path.read_text()}```\n"
        return card, text
    return None
