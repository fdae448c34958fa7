"""The imaging embedders: model input canvases -> unit vectors with the backbone's own
features (no pill head), each call timed (wall and process CPU) per model, so that a hospital
sees what each model of the cascade costs (/metrics and the report's evidence)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from service.config import Settings
from service.metrics import MODEL_CPU_SECONDS
from service.models.embedder import embed
from service.models.registry import ModelRegistry


@dataclass
class ModelCost:
    """What one model cost during one study check: images embedded, wall and CPU seconds."""

    images: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def as_evidence(self) -> dict[str, float | int]:
        return {"images": self.images, "wall_ms": round(self.wall_s * 1000, 1),
                "cpu_ms": round(self.cpu_s * 1000, 1)}  # fmt: skip


@dataclass
class ImageEmbedder:
    """The configured imaging models, cascade order; one ONNX session each, shared by threads."""

    registry: ModelRegistry
    names: list[str]
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def version(self, name: str) -> str:
        return self.registry.get(name).version

    def embed(
        self, name: str, canvases: list[np.ndarray], cost: ModelCost | None = None
    ) -> np.ndarray:
        """Embed canvases with one model (call from a worker thread); rows are unit length.
        CPU time is the process's, so it includes other threads' work done meanwhile: one call
        at a time per embedder keeps it close (and ONNX Runtime parallelises inside a call)."""
        with self._lock:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            vectors = embed(self.registry, name, canvases, head=False)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        MODEL_CPU_SECONDS.labels(name).inc(cpu)
        if cost is not None:
            cost.images += len(canvases)
            cost.wall_s += wall
            cost.cpu_s += cpu
        return vectors


def load_image_embedder(settings: Settings) -> ImageEmbedder | None:
    """Load the imaging cascade's models once (None when the pixel tiers are off)."""
    content = settings.imaging.content
    if not content.enabled:
        return None
    models = settings.models.model_copy(
        update={"embedder": content.models[0], "cascade": content.models[1:], "head": None,
                "ocr": False}
    )  # fmt: skip
    return ImageEmbedder(ModelRegistry(models).load(), list(content.models))
