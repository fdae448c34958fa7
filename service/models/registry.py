"""Loads each ONNX model once and tells the health endpoint what is loaded and which version.

The registry is built in the app lifespan (or the CLI), never at import time. Which embedders
run, and in which order (fast first, bigger only when unsure), is `ModelSettings.embedders`:
adding a model to the cascade is a card + a setting, not code.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.config import ModelSettings
from service.errors import ModelNotLoaded
from service.metrics import MODEL_LATENCY
from service.models.cards import BUNDLED_DIR, ModelCard, all_cards


@dataclass
class LatencyStats:
    """Rolling per-call latency of one model (last 1000 calls)."""

    samples: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    calls: int = 0

    def add(self, ms: float) -> None:
        self.samples.append(ms)
        self.calls += 1

    def summary(self) -> dict[str, float]:
        """p50/p95/mean in milliseconds over the kept window."""
        if not self.samples:
            return {"calls": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "mean_ms": 0.0}
        arr = np.asarray(self.samples)
        return {
            "calls": float(self.calls),
            "p50_ms": float(np.percentile(arr, 50)),
            "p95_ms": float(np.percentile(arr, 95)),
            "mean_ms": float(arr.mean()),
        }


@dataclass
class LoadedModel:
    """One model: its card identity, its runtime object and its call statistics."""

    name: str
    version: str
    dim: int
    input_size: int
    runtime: Any = None
    applies_to: str | None = None  # heads: the embedder whose output they project
    stats: LatencyStats = field(default_factory=LatencyStats)

    @property
    def loaded(self) -> bool:
        return self.runtime is not None


class ModelRegistry:
    """All model sessions of the process, created once with the configured thread counts."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    @property
    def model_dir(self) -> Path:
        return self.settings.dir or BUNDLED_DIR

    def load(self) -> ModelRegistry:
        """Create every configured session (embedders in cascade order, then OCR)."""
        cards = {c.id: c for c in all_cards(self.model_dir)}
        with self._lock:
            for name in self.settings.embedders:
                if name not in cards:
                    raise ModelNotLoaded(f"no model card for embedder {name!r}", model=name)
                self._models[name] = self._load_embedder(cards[name])
            head = self.settings.head
            if head:
                if head not in cards:
                    raise ModelNotLoaded(f"no model card for head {head!r}", model=head)
                self._models[head] = self._load_embedder(cards[head])
            if self.settings.ocr:
                from service.models.ocr import load_ocr

                card = cards.get("rapidocr-ppocrv4")
                version = card.version if card else "rapidocr-ppocrv4@unknown"
                self._models["ocr"] = LoadedModel("ocr", version, 0, 0, load_ocr(self.settings))
        return self

    def _load_embedder(self, card: ModelCard) -> LoadedModel:
        """One ONNX Runtime session per file (embedder or head), configured threads."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.settings.intra_op_threads
        opts.inter_op_num_threads = self.settings.inter_op_threads
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        path = next(iter(card.files))
        session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        shape = card.raw["input"]["shape"]
        size = int(shape[2]) if len(shape) == 4 else 0  # heads take vectors, not images
        return LoadedModel(
            card.id,
            card.version,
            int(card.raw["output"]["dim"]),
            size,
            session,
            card.raw.get("applies_to"),
        )

    def get(self, name: str) -> LoadedModel:
        """The loaded model, or ModelNotLoaded (HTTP 503) so callers never see a None."""
        model = self._models.get(name)
        if model is None or not model.loaded:
            raise ModelNotLoaded(f"model {name!r} is not loaded", model=name)
        return model

    def head_for(self, embedder: str) -> LoadedModel | None:
        """The configured head if it was trained on this embedder's output, else None."""
        if not self.settings.head:
            return None
        head = self.get(self.settings.head)
        return head if head.applies_to in (None, embedder) else None

    def embedding_version(self, name: str) -> str:
        """Version of what `embed` returns: the embedder, plus its head when one applies."""
        head = self.head_for(name)
        base = self.get(name).version
        return f"{base}+{head.version}" if head else base

    def timed(self, name: str) -> _Timer:
        """Context manager that records one call's latency for `name` (here and in /metrics)."""
        return _Timer(self.get(name).stats, name)

    def status(self) -> list[dict[str, object]]:
        """What the health endpoint shows: every configured model, loaded or not."""
        wanted = list(self.settings.embedders)
        wanted += [self.settings.head] if self.settings.head else []
        wanted += ["ocr"] if self.settings.ocr else []
        out: list[dict[str, object]] = []
        for name in wanted:
            m = self._models.get(name)
            out.append(
                {"name": name, "version": m.version if m else None, "loaded": bool(m and m.loaded)}
            )
        return out

    def latency(self) -> dict[str, dict[str, float]]:
        """Per-model call statistics for metrics and the benchmark."""
        return {name: m.stats.summary() for name, m in self._models.items()}


class _Timer:
    def __init__(self, stats: LatencyStats, name: str) -> None:
        self._stats = stats
        self._histogram = MODEL_LATENCY.labels(name)
        self._t0 = 0.0

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self._t0
        self._stats.add(seconds * 1000.0)
        self._histogram.observe(seconds)
