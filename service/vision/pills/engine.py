"""The pill engine: photo -> pills -> measurements (crops, embeddings, imprint, colour, shape).
No database access and no decisions.

`analyse` measures every pill of a query photo (`QueryPill`s), `enrol_image` the views of a
reference image (`ReferenceView`s, which the caller stores), `restage` a pill again with the
next embedder of a cascade. Ranking and verdicts are in `service.verify`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from service.config import LimitSettings
from service.errors import NoPillFound, TooManyPills
from service.models.embedder import embed
from service.models.ocr import NO_READ, ImprintRead, read_imprint, relief
from service.models.registry import ModelRegistry
from service.verify.pills.features import READ_SEPARATOR
from service.verify.pills.measurements import QueryPill, ReferenceView
from service.vision.pills.colour import apply_gains, background_gains, dominant_colours
from service.vision.pills.decode import decode_image
from service.vision.pills.descriptors import (
    masked,
    ocr_band,
    shape_features,
    softened,
    upright_crop,
)
from service.vision.pills.segment import PillRegion, find_pills, whole_frame_region

COLOUR_STRENGTH = 1.0  # share of the background cast removed (1 = full von Kries)
QUERY_TURNS = (0.0, 180.0)  # query crops: the long axis is known, its direction is not
REF_TURNS = (0.0, 90.0, 180.0, 270.0)  # references cover every right-angle turn
ELONGATED_TURNS = (0.0, 180.0)  # upright crops of oval/capsule pills differ only by a half turn
SOFT_SIDES = (32, 64, 128)  # px: extra reference views at the sharpness of small, far pills
QUERY_OCR_TURNS = (0.0,)  # the OCR's own line classifier handles upside-down text
REF_OCR_TURNS = (0.0, 90.0)  # enrolment reads harder: text across a capsule, any round pill


@dataclass
class PhotoResult:
    """One analysed photo: its pills (largest first) and where the time went (ms)."""

    pills: list[QueryPill]
    timings: dict[str, float] = field(default_factory=dict)
    crops: list[list[np.ndarray]] = field(default_factory=list)  # per pill, for the cascade


class PillEngine:
    """Holds the loaded models and settings; every method is safe to call from many threads."""

    def __init__(self, registry: ModelRegistry, limits: LimitSettings) -> None:
        self.registry = registry
        self.limits = limits
        self.embedder = registry.settings.embedder

    @property
    def model_version(self) -> str:
        return self.registry.embedding_version(self.embedder)

    def analyse_bytes(self, data: bytes) -> PhotoResult:
        """Decode then analyse; image errors surface as the matching VerityError."""
        t0 = time.perf_counter()
        rgb = decode_image(data, self.limits)
        result = self.analyse(rgb)
        result.timings["decode"] = (time.perf_counter() - t0) * 1000 - sum(result.timings.values())
        return result

    def analyse(self, rgb: np.ndarray) -> PhotoResult:
        """Find, count and describe every pill in an RGB photo."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        regions = find_pills(rgb)
        if not regions:
            raise NoPillFound()
        if len(regions) > self.limits.max_pills_per_photo:
            raise TooManyPills(
                f"{len(regions)} pills > {self.limits.max_pills_per_photo}", count=len(regions)
            )
        timings["find"] = _ms(t)
        described = [
            self._describe(rgb, r, regions, i, QUERY_TURNS, QUERY_OCR_TURNS, timings)
            for i, r in enumerate(regions)
        ]
        return PhotoResult([d[0] for d in described], timings, [d[1] for d in described])

    def _describe(
        self,
        rgb: np.ndarray,
        region: PillRegion,
        regions: list[PillRegion],
        index: int,
        turns: tuple[float, ...],
        ocr_turns: tuple[float, ...],
        timings: dict[str, float],
    ) -> tuple[QueryPill, list[np.ndarray]]:
        t = time.perf_counter()
        others = np.zeros_like(region.mask)
        for r in regions:
            others |= r.mask
        gains = background_gains(rgb, others, COLOUR_STRENGTH)
        corrected = apply_gains(rgb, gains)
        crops = [upright_crop(corrected, region.mask, region.contour, turn) for turn in turns]
        features: dict[str, Any] = dict(shape_features(region.contour))
        features["bbox"] = [int(v) for v in cv2.boundingRect(region.contour)]  # x, y, w, h
        features["colours"] = dominant_colours(crops[0][0], crops[0][1])
        features["relative_area"] = round(region.area_px / max(r.area_px for r in regions), 4)
        features["frame_fraction"] = round(region.area_px / float(rgb.shape[0] * rgb.shape[1]), 5)
        features["touches_border"] = region.touches_border
        features["gains"] = [round(float(g), 4) for g in gains]
        timings["describe"] = timings.get("describe", 0.0) + _ms(t)
        t = time.perf_counter()
        inputs = [masked(c, m) for c, m in crops]
        embeddings = embed(self.registry, self.embedder, inputs)
        timings["embed"] = timings.get("embed", 0.0) + _ms(t)
        t = time.perf_counter()
        reads = [
            self._ocr(ocr_band(*upright_crop(corrected, region.mask, region.contour, turn)))
            for turn in ocr_turns
        ]
        timings["ocr"] = timings.get("ocr", 0.0) + _ms(t)
        text = READ_SEPARATOR.join(dict.fromkeys(r.text for r in reads if r.text))
        confidence = max((r.confidence for r in reads), default=0.0)
        pill = QueryPill(embeddings, features, text or None, confidence, self.model_version, index)
        return pill, inputs

    def _ocr(self, crop: np.ndarray) -> ImprintRead:
        if not self.registry.settings.ocr:
            return NO_READ
        ocr = self.registry.get("ocr")
        settings = self.registry.settings
        with self.registry.timed("ocr"):
            cap = settings.ocr_max_side_px
            first = read_imprint(ocr.runtime, crop, settings.ocr_side_px, max_side_px=cap)
            if first.text or not settings.ocr_relief_side_px:
                return first
            return read_imprint(
                ocr.runtime, relief(crop), settings.ocr_relief_side_px, max_side_px=cap
            )

    def enrol_image(
        self, rgb: np.ndarray, product_id: str, image_id: str, view: str = "front"
    ) -> list[ReferenceView]:
        """Records for one reference image: its largest pill (else the frame), several views.

        Views: every right-angle turn for round pills (the long axis of a round pill is
        arbitrary), 0/180 degrees for elongated ones, each also softened to the resolution of
        a small pill in a full phone frame; one set per embedder of the cascade.
        """
        regions = find_pills(rgb) or [whole_frame_region(rgb)]
        region = regions[0]
        elongated = shape_features(region.contour)["shape"] in ("oval", "capsule")
        turns = ELONGATED_TURNS if elongated else REF_TURNS
        pill, inputs = self._describe(rgb, region, regions[:1], 0, turns, REF_OCR_TURNS, {})
        names = [f"{view}/rot{int(t)}" for t in turns]
        gains = np.asarray(pill.features["gains"], np.float32)
        crops = [
            upright_crop(apply_gains(rgb, gains), region.mask, region.contour, turn)
            for turn in turns
        ]
        for side in SOFT_SIDES:
            inputs += [masked(softened(c, side), m) for c, m in crops]
            names += [f"{view}/rot{int(t)}/soft{side}" for t in turns]
        records: list[ReferenceView] = []
        for stage, name in enumerate(self.registry.settings.embedders):
            done = pill.embeddings if stage == 0 else np.zeros((0, 0), np.float32)
            rest = embed(self.registry, name, inputs[len(done) :])
            version = self.registry.embedding_version(name)
            for label, emb in zip(names, [*done, *rest], strict=True):
                records.append(
                    ReferenceView(
                        product_id, image_id, label, emb, pill.features, pill.imprint_read, version
                    )
                )
        return records

    def restage(self, pill: QueryPill, name: str, crops: list[np.ndarray]) -> QueryPill:
        """The same pill described by another embedder of the cascade (its own vectors)."""
        return replace(
            pill,
            embeddings=embed(self.registry, name, crops),
            model_version=self.registry.embedding_version(name),
        )


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
