"""A perceptual fingerprint of one display frame, for finding the same pixels under another
patient: the signs of the 256 lowest DCT frequencies of a 64x64 intensity-normalised thumbnail.

Why this shape: the thumbnail removes size and re-encoding noise (resizing, lossy JPEG/J2K, bit
depth); the z-score removes linear intensity changes (another window centre/width, rescale)
and the sign-against-median of each coefficient is unchanged by most monotonic ones; the
lowest frequencies move little under a crop of a few pixels. Measured on the dev studies
(tests/vision/test_fingerprint.py): the duplicate cases are 0 bits from their archive image,
every other (case, archive) pair 106-150 bits apart; a crop of 3% per side is too much (up
to 80 bits).
"""

from __future__ import annotations

import cv2
import numpy as np

THUMBNAIL = 64
FINGERPRINT_BITS = 256
# The lowest frequencies first (by u+v, then u), without the DC term (the mean, always 0 here).
_ORDER = sorted(
    ((u, v) for u in range(THUMBNAIL) for v in range(THUMBNAIL) if (u, v) != (0, 0)),
    key=lambda p: (p[0] + p[1], p[0]),
)[:FINGERPRINT_BITS]
_ROWS = np.array([p[0] for p in _ORDER])
_COLS = np.array([p[1] for p in _ORDER])
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _grey(image: np.ndarray) -> np.ndarray:
    pixels = image.astype(np.float32)
    if pixels.ndim == 3:
        return pixels[..., :3] @ _LUMA
    return pixels


def fingerprint_bits(image: np.ndarray) -> np.ndarray:
    """The fingerprint as FINGERPRINT_BITS booleans (grey (H, W) or RGB (H, W, 3) input)."""
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError("fingerprint needs a 2-D grey or RGB image")
    thumb = cv2.resize(_grey(image), (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
    spread = float(thumb.std())
    thumb = (thumb - float(thumb.mean())) / (spread if spread > 0 else 1.0)
    coefficients = cv2.dct(thumb.astype(np.float32))[_ROWS, _COLS]
    return np.asarray(coefficients > np.median(coefficients))


def fingerprint(image: np.ndarray) -> str:
    """The fingerprint as '0'/'1' text, the form PostgreSQL's bit(n) accepts."""
    return "".join("1" if bit else "0" for bit in fingerprint_bits(image))


def hamming(a: str, b: str) -> int:
    """Number of differing bits of two fingerprints of the same length."""
    if len(a) != len(b):
        raise ValueError("fingerprints of different lengths")
    return (int(a, 2) ^ int(b, 2)).bit_count() if a else 0
