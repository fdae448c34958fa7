"""Geometry of one pill: upright crops (long axis horizontal) and shape descriptors."""

from __future__ import annotations

import math

import cv2
import numpy as np

FILL = 255  # background outside the pill mask in embedding crops (white: paper, trays)
MARGIN = 0.12  # crop margin around the pill, share of its long side


def shape_features(contour: np.ndarray) -> dict[str, float | str]:
    """Scale-free shape numbers plus a coarse class (round / oval / capsule / polygon)."""
    (_, _), (rw, rh), _ = cv2.minAreaRect(contour)
    long_side, short_side = max(rw, rh), max(min(rw, rh), 1.0)
    area = float(cv2.contourArea(contour))
    perimeter = float(cv2.arcLength(contour, True))
    circularity = 4.0 * math.pi * area / max(perimeter**2, 1.0)
    rect_fill = area / max(long_side * short_side, 1.0)
    aspect = long_side / short_side
    corners = len(cv2.approxPolyDP(contour, 0.04 * perimeter, True))
    if aspect < 1.15 and circularity > 0.86:
        label = "round"
    elif aspect < 1.2 and 3 <= corners <= 8:
        label = "polygon"
    elif aspect >= 1.6 and rect_fill > 0.86:
        label = "capsule"
    else:
        label = "oval"
    return {
        "aspect": round(aspect, 4),
        "circularity": round(circularity, 4),
        "rect_fill": round(rect_fill, 4),
        "corners": float(corners),
        "shape": label,
    }


def upright_crop(
    rgb: np.ndarray, mask: np.ndarray, contour: np.ndarray, angle_offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate so the pill's long axis is horizontal, then crop it with a margin (image, mask)."""
    (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
    if rw < rh:
        angle, rw, rh = angle + 90.0, rh, rw
    angle += angle_offset
    side = max(rw, rh) * (1.0 + 2 * MARGIN)
    rot = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    rot[0, 2] += side / 2 - cx
    rot[1, 2] += side / 2 - cy
    size = (max(8, round(side)), max(8, round(side)))
    img = cv2.warpAffine(rgb, rot, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    msk = cv2.warpAffine(mask, rot, size, flags=cv2.INTER_NEAREST, borderValue=0)
    return img, msk


def masked(img: np.ndarray, msk: np.ndarray, fill: int | None = None) -> np.ndarray:
    """The pill on a uniform background, so the background never counts as evidence."""
    out = np.full_like(img, FILL if fill is None else fill)
    out[msk > 0] = img[msk > 0]
    return out


def ocr_band(img: np.ndarray, msk: np.ndarray) -> np.ndarray:
    """Tight box around the pill inside the upright crop (OCR cost grows with area)."""
    ys, xs = np.nonzero(msk)
    if len(xs) == 0:
        return img
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def softened(img: np.ndarray, long_side: int) -> np.ndarray:
    """The crop as a far-away phone camera would see it: downscaled, then back up."""
    h, w = img.shape[:2]
    if max(h, w) <= long_side:
        return img
    f = long_side / max(h, w)
    small = cv2.resize(
        img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
