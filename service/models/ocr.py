"""Imprint OCR: RapidOCR (PP-OCRv4 ONNX models from the installed wheel) on one pill crop."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from service.config import ModelSettings

_KEEP = re.compile(r"[^A-Z0-9]")


@dataclass(frozen=True)
class ImprintRead:
    """What OCR read on a pill: normalised text (A-Z, 0-9, tokens by space) and confidence."""

    text: str
    confidence: float

    @property
    def empty(self) -> bool:
        return not self.text


NO_READ = ImprintRead("", 0.0)
_CLAHE = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 4))


def load_ocr(settings: ModelSettings) -> Any:
    """One RapidOCR engine with the configured thread counts (its three ONNX sessions)."""
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR(
        intra_op_num_threads=settings.intra_op_threads,
        inter_op_num_threads=settings.inter_op_threads,
        det_limit_side_len=settings.ocr_side_px,
        det_limit_type="min",
        print_verbose=False,
    )


def normalise_text(raw: str) -> str:
    """Upper-case, keep letters and digits, one space between tokens (imprints have no case)."""
    tokens = (_KEEP.sub("", t.upper()) for t in raw.split())
    return " ".join(t for t in tokens if t)


def relief(rgb: np.ndarray) -> np.ndarray:
    """Debossed imprints as dark-on-light strokes: grey, minus its blur (lighting), CLAHE.

    A debossed imprint has no ink: only the light and shadow of its edges. Removing the
    low-frequency shading and stretching local contrast turns it into text OCR can read.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    detail = grey.astype(np.float32) - cv2.GaussianBlur(grey, (0, 0), 6).astype(np.float32)
    span = max(float(detail.max() - detail.min()), 1e-6)
    stretched = ((detail - detail.min()) * (255.0 / span)).astype(np.uint8)
    out: np.ndarray = cv2.cvtColor(_CLAHE.apply(stretched), cv2.COLOR_GRAY2RGB)
    return out


def ocr_input(rgb: np.ndarray, side_px: int, max_side_px: int = 640) -> np.ndarray:
    """The crop as the OCR gets it (BGR): short side `side_px`, long side at most `max_side_px`
    (the detector's memory and time grow with the pixels of long capsules)."""
    h, w = rgb.shape[:2]
    scale = min(side_px / max(1, min(h, w)), max_side_px / max(1, max(h, w)))
    if abs(scale - 1.0) > 0.05:
        rgb = cv2.resize(
            rgb,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA,
        )
    bgr: np.ndarray = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return bgr


def read_imprint(
    engine: Any, rgb: np.ndarray, side_px: int, min_score: float = 0.5, max_side_px: int = 640
) -> ImprintRead:
    """Read every text line on the crop; confidence is the length-weighted mean line score."""
    result, _ = engine(ocr_input(rgb, side_px, max_side_px), text_score=min_score)
    if not result:
        return NO_READ
    # reading order: top to bottom, then left to right
    lines = sorted(
        result,
        key=lambda r: (float(np.mean([p[1] for p in r[0]])), float(np.mean([p[0] for p in r[0]]))),
    )
    texts, weights, scores = [], [], []
    for _box, text, score in lines:
        norm = normalise_text(str(text))
        if norm:
            texts.append(norm)
            weights.append(len(norm))
            scores.append(float(score))
    if not texts:
        return NO_READ
    conf = float(np.average(scores, weights=weights))
    return ImprintRead(" ".join(texts), conf)
