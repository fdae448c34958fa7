"""Pill crop -> L2-normalised appearance embedding with a bundled ONNX model."""

from __future__ import annotations

import cv2
import numpy as np

from service.models.registry import LoadedModel, ModelRegistry


def preprocess(crops: list[np.ndarray], size: int) -> np.ndarray:
    """RGB uint8 crops -> NCHW float32 normalised as the model card says: (x*255-127)/128."""
    batch = np.empty((len(crops), 3, size, size), dtype=np.float32)
    for i, crop in enumerate(crops):
        if crop.shape[:2] != (size, size):
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        batch[i] = ((crop.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)
    return batch


def run_onnx(model: LoadedModel, batch: np.ndarray) -> np.ndarray:
    """Raw ONNX inference (used by the benchmark to compare against the full pipeline)."""
    out = model.runtime.run(None, {"input": batch})[0]
    return np.asarray(out, dtype=np.float32)


def embed(
    registry: ModelRegistry, name: str, crops: list[np.ndarray], *, head: bool = True
) -> np.ndarray:
    """Embed a batch of crops (then the configured pill head, unless `head` is False: the
    imaging checks use the backbone's own features); rows are unit length."""
    projection = registry.head_for(name) if head else None
    out_dim = projection.dim if projection else registry.get(name).dim
    if not crops:
        return np.zeros((0, out_dim), dtype=np.float32)
    model = registry.get(name)
    batch = preprocess(crops, model.input_size)
    with registry.timed(name):
        feats = run_onnx(model, batch)
    feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    if projection:
        with registry.timed(projection.name):
            feats = projection.runtime.run(None, {"embedding": feats.astype(np.float32)})[0]
        feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return np.asarray(feats, dtype=np.float32)
