"""Load the fused-score coefficients shipped beside the models (kept out of pure verify/)."""

from __future__ import annotations

import json
from pathlib import Path

from service.models.cards import BUNDLED_DIR
from service.verify.pills.features import FEATURES
from service.verify.pills.ranking import DEFAULT_FUSION, FusionModel

FUSION_FILE = "pill-fusion.json"


def load_fusion(model_dir: Path | None = None) -> FusionModel:
    """Coefficients from pill-fusion.json; the built-in defaults when the file is absent."""
    path = (model_dir or BUNDLED_DIR) / FUSION_FILE
    if not path.exists():
        return DEFAULT_FUSION
    raw = json.loads(path.read_text())
    if tuple(raw["features"]) != FEATURES:
        raise ValueError(f"{path}: features {raw['features']} != {FEATURES}")
    return FusionModel(
        tuple(float(w) for w in raw["weights"]), float(raw["bias"]), str(raw["version"])
    )
