"""Pill finding on real photos, blank and noise frames, and a composed 6-pill photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from service.config import LimitSettings
from service.errors import NoPillFound, TooManyPills
from service.vision.pills.descriptors import shape_features
from service.vision.pills.segment import find_pills


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize(
    "rel",
    [
        "ndc_00002-3228-30/ref_1.jpg",
        "ndc_00007-4891-20/photo_1.jpg",
        "ndc_00093-0311-01/photo_3.jpg",
        "ndc_60505-1308-01/photo_2.jpg",
    ],
)
def test_one_pill_found_in_real_photos(pills_dir: Path, rel: str) -> None:
    assert len(find_pills(_rgb(pills_dir / rel))) == 1


@pytest.mark.parametrize(
    ("rel", "frac_range", "aspect_range"),
    [
        # white oval on off-white with a soft shadow: the colour mask keeps only the imprint
        ("ndc_00093-0058-05/photo_1.jpg", (0.04, 0.12), (1.6, 2.8)),
        # light grey oval on grey: the colour mask keeps only the dark shadow band under it
        ("ndc_00054-0166-25/photo_1.jpg", (0.011, 0.03), (1.8, 3.2)),
        # macro shot: a white oval fills the frame and runs off its left and right edges
        ("ndc_00071-0155-23/photo_1.jpg", (0.5, 0.9), (1.2, 2.2)),
    ],
)
def test_low_contrast_pill_is_its_outline_not_its_marks(
    pills_dir: Path, rel: str, frac_range: tuple[float, float], aspect_range: tuple[float, float]
) -> None:
    rgb = _rgb(pills_dir / rel)
    h, w = rgb.shape[:2]
    regions = find_pills(rgb)
    assert len(regions) == 1
    main = regions[0]
    frac = main.area_px / (h * w)
    assert frac_range[0] <= frac <= frac_range[1]
    (_, _), (a, b), _ = cv2.minAreaRect(main.contour)
    assert aspect_range[0] <= max(a, b) / min(a, b) <= aspect_range[1]
    x, y, bw, bh = cv2.boundingRect(main.contour)
    assert x <= w / 2 <= x + bw and y <= h / 2 <= y + bh


def test_blank_and_noise_frames_have_no_pill() -> None:
    blank = np.full((400, 600, 3), 200, np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    assert find_pills(blank) == []
    assert find_pills(noise) == []


def test_shapes_of_known_pills(pills_dir: Path) -> None:
    capsule = find_pills(_rgb(pills_dir / "ndc_00002-3228-30/ref_1.jpg"))[0]
    round_ = find_pills(_rgb(pills_dir / "ndc_00074-7149-90/ref_1.jpg"))[0]
    assert shape_features(capsule.contour)["shape"] == "capsule"
    assert shape_features(round_.contour)["shape"] == "round"


def compose_pills(pills_dir: Path, n: int) -> np.ndarray:
    """n real pills cut from studio references, pasted on one grey tray."""
    refs = [
        "ndc_00002-3228-30/ref_1.jpg",
        "ndc_00007-4891-20/ref_1.jpg",
        "ndc_00074-7149-90/ref_1.jpg",
        "ndc_00049-4910-30/ref_1.jpg",
        "ndc_00093-0058-05/ref_1.jpg",
        "ndc_00004-0800-85/ref_1.jpg",
    ]
    canvas = np.full((900, 1200, 3), 118, np.uint8)
    for k in range(n):
        rgb = _rgb(pills_dir / refs[k % len(refs)])
        region = find_pills(rgb)[0]
        ys, xs = np.nonzero(region.mask)
        crop = rgb[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        mask = region.mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] > 0
        oy, ox = 60 + (k // 3) * 420, 40 + (k % 3) * 390
        h, w = min(crop.shape[0], 380), min(crop.shape[1], 360)
        canvas[oy : oy + h, ox : ox + w][mask[:h, :w]] = crop[:h, :w][mask[:h, :w]]
    return canvas


def test_six_pills_are_counted(pills_dir: Path) -> None:
    assert len(find_pills(compose_pills(pills_dir, 6))) == 6


@pytest.mark.slow
def test_engine_refuses_too_many_and_no_pill(pills_dir: Path, engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.limits.max_pills_per_photo == LimitSettings().max_pills_per_photo == 5
    with pytest.raises(TooManyPills):
        engine.analyse(compose_pills(pills_dir, 6))
    assert len(engine.analyse(compose_pills(pills_dir, 3)).pills) == 3
    with pytest.raises(NoPillFound):
        engine.analyse(np.full((300, 300, 3), 240, np.uint8))
