"""A display frame -> the model input canvas: RGB, square, aspect kept (letterboxed on black,
the background of every modality), CANVAS px. Stored as PNG with each image so that a new
model can re-embed the archive without the PACS."""

from __future__ import annotations

import cv2
import numpy as np

CANVAS = 256  # px; larger than the 224 px ImageNet input so a model up to 256 px re-embeds it


def canvas(frame: np.ndarray, size: int = CANVAS) -> np.ndarray:
    """uint8 (H, W) grey or (H, W, 3) RGB -> uint8 (size, size, 3) RGB, centred."""
    rgb = np.repeat(frame[:, :, None], 3, axis=2) if frame.ndim == 2 else frame[:, :, :3]
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(np.ascontiguousarray(rgb), (nw, nh), interpolation=interpolation)
    out = np.zeros((size, size, 3), dtype=np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y : y + nh, x : x + nw] = small
    return out


def to_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 RGB array
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def from_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 RGB (a canvas stored by `to_png`)."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a PNG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
