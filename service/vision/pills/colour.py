"""Colour constancy against the photo's own background, and the pill's dominant colour(s).

Consumer photos carry strong casts; the background around the pill is the one surface we can
assume is roughly neutral (paper, tray, studio grey), so a von Kries gain that greys it out
removes most of the cast. `strength` < 1 keeps part of it, for genuinely coloured backgrounds.
"""

from __future__ import annotations

import cv2
import numpy as np

from service.vision.pills.segment import border_pixels

MAX_GAIN = 1.8
TWO_TONE_DELTA_E = 18.0  # two clusters closer than this are one colour with shading

_NAMES = (  # (name, hue-angle range in degrees on the a*b* plane)
    ("RED", -20.0, 40.0),
    ("ORANGE", 40.0, 65.0),
    ("YELLOW", 65.0, 105.0),
    ("GREEN", 105.0, 200.0),
    ("BLUE", 200.0, 290.0),
    ("PURPLE", 290.0, 340.0),
)


def background_gains(rgb: np.ndarray, pill_mask: np.ndarray, strength: float) -> np.ndarray:
    """Per-channel gains that make the median non-pill border colour neutral."""
    free = border_pixels(cv2.bitwise_not(pill_mask)[..., None])[:, 0] > 0
    pixels = border_pixels(rgb)[free].astype(np.float32)
    if len(pixels) < 50:
        pixels = rgb[pill_mask == 0].reshape(-1, 3).astype(np.float32)
    if len(pixels) < 50:
        return np.ones(3, np.float32)
    bg = np.maximum(np.median(pixels, axis=0), 1.0)
    gains: np.ndarray = np.clip(bg.mean() / bg, 1.0 / MAX_GAIN, MAX_GAIN) ** strength
    return gains.astype(np.float32)


def apply_gains(rgb: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Apply von Kries gains to a uint8 RGB image."""
    out: np.ndarray = np.clip(rgb.astype(np.float32) * gains, 0, 255).astype(np.uint8)
    return out


def dominant_colours(rgb: np.ndarray, mask: np.ndarray) -> list[dict[str, float | str]]:
    """One or two Lab colours (two-tone capsules) with their share of the pill, main first."""
    inner = cv2.erode(mask, np.ones((5, 5), np.uint8))
    if int(inner.sum()) == 0:
        inner = mask
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[inner > 0].astype(np.float32)
    if len(lab) == 0:
        return []
    lab = lab[:: max(1, len(lab) // 4000)]
    lab[:, 0] *= 100.0 / 255.0
    lab[:, 1:] -= 128.0
    if len(lab) < 20:
        return [_describe(np.median(lab, axis=0), 1.0)]
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    best = np.zeros((len(lab), 1), np.int32)
    _, labels, centres = cv2.kmeans(lab, 2, best, crit, 2, cv2.KMEANS_PP_CENTERS)
    shares = np.bincount(labels.ravel(), minlength=2) / len(labels)
    if np.linalg.norm(centres[0] - centres[1]) < TWO_TONE_DELTA_E or shares.min() < 0.2:
        return [_describe(np.median(lab, axis=0), 1.0)]
    order = np.argsort(-shares)
    return [_describe(centres[i], float(shares[i])) for i in order]


def _describe(lab: np.ndarray, share: float) -> dict[str, float | str]:
    """JSON-ready colour: L*, a*, b*, share and a coarse name for the pharmacist."""
    L, a, b = (float(v) for v in lab)
    return {
        "L": round(L, 2),
        "a": round(a, 2),
        "b": round(b, 2),
        "share": round(share, 3),
        "name": colour_name(L, a, b),
    }


def colour_name(L: float, a: float, b: float) -> str:
    """Coarse colour word from Lab (for evidence text only, never for scoring)."""
    chroma = float(np.hypot(a, b))
    if chroma < 12:
        return "WHITE" if L > 70 else ("GRAY" if L > 35 else "BLACK")
    hue = float(np.degrees(np.arctan2(b, a)))
    hue = hue + 360.0 if hue < -20.0 else hue
    for name, lo, hi in _NAMES:
        if lo <= hue < hi:
            if name in ("RED", "ORANGE") and L < 45:
                return "BROWN"
            if name == "RED" and L > 70:
                return "PINK"
            return name
    return "PINK" if L > 60 else "RED"
