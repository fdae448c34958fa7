"""Procedurally drawn pixel phantoms for the demo studies: an axial head CT slice and an axial
chest CT slice (Hounsfield units, varying smoothly with the slice position) and a PA chest
radiograph. Deterministic from a seed; each seed is another patient's anatomy, so images of
different patients are genuinely different and never look like duplicates of each other."""

from __future__ import annotations

import cv2
import numpy as np

AIR_HU = -1000.0


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in [-1, 1]; y grows towards the patient's back (posterior, image bottom)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return x, y


def _placed(x: np.ndarray, y: np.ndarray, anatomy: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Where this patient lies in the gantry: a few mm off centre and turned a few degrees."""
    dx, dy, turn = (
        anatomy.uniform(-0.1, 0.1),
        anatomy.uniform(-0.08, 0.08),
        anatomy.uniform(-0.2, 0.2),
    )
    c, s = np.cos(turn), np.sin(turn)
    u, v = x - dx, y - dy
    return u * c + v * s, -u * s + v * c


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float,
             angle: float = 0.0) -> np.ndarray:  # fmt: skip
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    mask: np.ndarray = (u / ax) ** 2 + (v / ay) ** 2 <= 1.0
    return mask


def _finish(hu: np.ndarray, rng: np.random.Generator, noise_hu: float) -> np.ndarray:
    """Soften the edges like a reconstruction kernel and add quantum noise inside the body."""
    smooth = cv2.GaussianBlur(hu.astype(np.float32), (0, 0), 0.8)
    body = smooth > AIR_HU + 50
    noise = np.asarray(rng.normal(0.0, noise_hu, smooth.shape), dtype=np.float32)
    noisy = smooth + body * noise
    return np.asarray(noisy, dtype=np.float32)


def head_ct_slice(size: int, z_mm: float, seed: int) -> np.ndarray:
    """An axial slice of a head, `z_mm` above the skull base (0-90 mm), in HU."""
    anatomy = np.random.default_rng(seed)
    width, depth = 0.68 * anatomy.uniform(0.9, 1.08), 0.84 * anatomy.uniform(0.92, 1.06)
    ventricle = anatomy.uniform(0.8, 1.3)
    lesion = (anatomy.uniform(-0.35, 0.35), anatomy.uniform(-0.4, 0.3), anatomy.uniform(45, 75))
    h = float(np.clip(z_mm / 100.0, 0.0, 0.95))
    scale = float(np.sqrt(max(0.05, 1.0 - ((h - 0.25) / 0.75) ** 2)))
    x, y = _placed(*_grid(size), anatomy)
    hu = np.full((size, size), AIR_HU, dtype=np.float32)
    outer = _ellipse(x, y, 0.0, 0.0, width * scale, depth * scale)
    inner = _ellipse(x, y, 0.0, 0.0, width * scale - 0.07, depth * scale - 0.07)
    brain = _ellipse(x, y, 0.0, 0.0, width * scale - 0.09, depth * scale - 0.09)
    hu[outer] = 20.0  # scalp
    hu[inner] = 900.0  # skull
    hu[brain] = 38.0  # grey matter
    white = _ellipse(x, y, 0.0, 0.02, (width * scale - 0.2), (depth * scale - 0.22))
    hu[white & brain] = 28.0
    hu[(np.abs(x) < 0.008) & brain & (np.abs(y) > 0.12)] = 70.0  # falx
    level = float(np.exp(-(((h - 0.35) / 0.12) ** 2)))  # lateral ventricles: mid-head slices
    if level > 0.05:
        for side in (-1.0, 1.0):
            horn = _ellipse(x, y, side * 0.09, -0.05, 0.05 * ventricle * level,
                            0.26 * ventricle * level, side * 0.25)  # fmt: skip
            hu[horn & brain] = 6.0
    lx, ly, lhu = lesion
    if abs(h - 0.3) < 0.2:
        hu[_ellipse(x, y, lx * scale, ly * scale, 0.04, 0.03) & brain] = lhu
    slice_rng = np.random.default_rng([seed, int(round(z_mm * 100))])
    return _finish(hu, slice_rng, 4.0)


def chest_ct_slice(size: int, z_mm: float, seed: int) -> np.ndarray:
    """An axial slice of a chest, `z_mm` below the lung apices (0-200 mm), in HU."""
    anatomy = np.random.default_rng(seed)
    width, depth = 0.9 * anatomy.uniform(0.92, 1.04), 0.58 * anatomy.uniform(0.92, 1.06)
    heart = anatomy.uniform(0.2, 0.27)
    t = float(np.clip(z_mm / 200.0, 0.0, 1.0))
    x, y = _grid(size)
    hu = np.full((size, size), AIR_HU, dtype=np.float32)
    hu[_ellipse(x, y, 0.0, 0.05, width, depth)] = -90.0  # subcutaneous fat
    hu[_ellipse(x, y, 0.0, 0.05, width - 0.06, depth - 0.06)] = 45.0  # muscle, mediastinum
    lung_w, lung_h = 0.32 * (0.6 + 0.4 * t), 0.42 * (0.6 + 0.4 * t)
    for side in (-1.0, 1.0):
        hu[_ellipse(x, y, side * 0.42, 0.0, lung_w, lung_h)] = -850.0
    if t > 0.35:
        hu[_ellipse(x, y, 0.12, -0.12, heart * (t + 0.3), heart * 0.8 * (t + 0.3))] = 40.0
    hu[_ellipse(x, y, -0.05, 0.05, 0.06, 0.06)] = 45.0  # aorta
    hu[_ellipse(x, y, 0.0, 0.42, 0.09, 0.09)] = 700.0  # vertebral body
    hu[_ellipse(x, y, 0.0, 0.42, 0.05, 0.05)] = 250.0
    slice_rng = np.random.default_rng([seed, int(round(z_mm * 100))])
    return _finish(hu, slice_rng, 8.0)


def chest_radiograph(size: int, seed: int) -> np.ndarray:
    """A PA chest radiograph as attenuation in [0, 1] (bone bright, lungs dark)."""
    anatomy = np.random.default_rng(seed)
    x, y = _grid(size)
    img = np.zeros((size, size), dtype=np.float32)
    shoulders = _ellipse(x, y, 0.0, -0.45, 0.9 * anatomy.uniform(0.95, 1.05), 0.4)
    trunk = shoulders | ((np.abs(x) < 0.78 - 0.1 * (y + 0.45)) & (y > -0.45))
    img[trunk] = 0.5
    apex, base = -0.66, 0.42 + anatomy.uniform(-0.05, 0.05)
    lungs = np.zeros_like(trunk)
    for side, wider in ((-1.0, 1.0), (1.0, anatomy.uniform(0.9, 1.0))):
        lung = _ellipse(x, y, side * 0.36, (apex + base) / 2, 0.28 * wider, (base - apex) / 2)
        dome = y < base - 0.15 * np.cos((x - side * 0.36) * 3.5)  # diaphragm
        lungs |= lung & dome
    img[lungs] = 0.16
    cardiac = anatomy.uniform(0.24, 0.3)
    img[_ellipse(x, y, 0.1, 0.12, cardiac, cardiac * 0.8, -0.5)] = 0.55  # heart, patient's left
    img[(np.abs(x) < 0.09) & (y > -0.75) & (y < 0.3)] = 0.6  # mediastinum
    img[(np.abs(x) < 0.05) & trunk] = 0.72  # spine
    for k in range(10):  # posterior ribs: arcs falling laterally across each lung field
        arc = apex + 0.02 + k * 0.105 + 0.5 * (np.abs(x) - 0.08) ** 2
        img[(np.abs(y - arc) < 0.016) & (np.abs(x) > 0.06) & lungs] += 0.2
    clavicle = np.abs(y - (-0.7 + 0.25 * (np.abs(x) - 0.35) ** 2)) < 0.02
    img[clavicle & (np.abs(x) < 0.62) & (np.abs(x) > 0.06)] += 0.3
    blurred = cv2.GaussianBlur(img, (0, 0), size / 256.0 * 1.6)
    noisy = blurred + np.asarray(anatomy.normal(0.0, 0.01, img.shape), dtype=np.float32)
    return np.asarray(np.clip(noisy, 0.0, 1.0), dtype=np.float32)
