"""Physical plausibility of an image for the declared (modality, body part): could these pixels,
at the size the header gives them, be that part of an adult? The rules are ones a radiographer
or PACS administrator applies at a glance (a 64x64 matrix is not a diagnostic shoulder MR, a
17 cm wide section is a head, not an abdomen, a whole-body scan is tall and narrow), with
ranges from adult anatomy and common acquisition protocols (the `source` of each rule), not
fitted to any case. Clearly outside a range: MISMATCH; within its margin: UNCERTAIN (a person
looks); a measure the image cannot give (no pixel spacing, no body found): not judged.
Pure: pixels and header in, verdicts out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

# Grey level (of 255) below which a display pixel is background: air in CT and MR, direct
# exposure in a radiograph. A radiograph's direct-exposure area is scatter-grey, not black.
BACKGROUND_GREY = 26
PROJECTION_BACKGROUND_GREY = 51
# Unexposed (collimated) areas and padding of a radiograph display flat white: not the body.
PROJECTION_UNEXPOSED_GREY = 250
PROJECTION_MODALITIES = frozenset({"CR", "DX", "RG", "MG", "XA", "RF"})


class Measure(StrEnum):
    MATRIX = "matrix"  # the smaller of Rows and Columns
    FIELD_MM = "field_mm"  # the smaller side of the field of view, mm
    FIELD_ASPECT = "field_aspect"  # long side / short side of the field (mm, else pixels)
    BODY_MM = "body_mm"  # largest extent of the imaged body, mm
    BODY_ASPECT = "body_aspect"  # long / short extent of the imaged body (mm, else pixels)


@dataclass(frozen=True)
class Band:
    """The plausible range of a measure: outside `mismatch_*` is implausible, between
    `mismatch_*` and `uncertain_*` a person looks. None: no bound on that side."""

    mismatch_low: float | None = None
    uncertain_low: float | None = None
    uncertain_high: float | None = None
    mismatch_high: float | None = None


@dataclass(frozen=True)
class Rule:
    modalities: frozenset[str]  # modality families (XR: CR and DX)
    regions: frozenset[str]  # body regions of bodyparts.REGIONS the order may name
    measure: Measure
    band: Band
    source: str  # where the range comes from


def _rule(modalities: str, regions: str, measure: Measure, band: Band, source: str) -> Rule:
    return Rule(frozenset(modalities.split()), frozenset(regions.split()), measure, band, source)


RULES: tuple[Rule, ...] = (
    _rule("CT", "HEAD BRAIN", Measure.BODY_MM, Band(uncertain_high=220, mismatch_high=260),
          "adult head length (glabella-opisthocranion) 17-21 cm, breadth 14-16.5 cm: no axial"
          " section of a head is wider than about 22 cm"),
    _rule("CT", "ABDOMEN PANCREAS", Measure.BODY_MM, Band(mismatch_low=200, uncertain_low=240),
          "adult abdominal breadth 25-45 cm: an abdominal section narrower than 20 cm is not"
          " an adult abdomen (judged only when the whole section is inside the field)"),
    _rule("CT", "CHEST LUNG HEART", Measure.BODY_MM, Band(mismatch_low=200, uncertain_low=240),
          "adult chest breadth 28-40 cm (judged only when the whole section is in the field)"),
    _rule("MR", "SHOULDER", Measure.MATRIX, Band(mismatch_low=128, uncertain_low=192),
          "shoulder MR protocols acquire 256-512 matrices (in-plane 0.3-0.6 mm over 14-18 cm);"
          " a 64x64 or 128x128 matrix is an EPI/perfusion brain series, not a shoulder"),
    _rule("MR", "SHOULDER", Measure.FIELD_MM,
          Band(mismatch_low=100, uncertain_low=120, uncertain_high=260, mismatch_high=400),
          "shoulder MR field of view 14-20 cm: under 10 cm cannot hold the joint; over 40 cm is"
          " a body-coil survey or a mosaic of slices, not a shoulder series"),
    _rule("NM", "WHOLEBODY", Measure.FIELD_ASPECT, Band(mismatch_low=1.5, uncertain_low=2.0),
          "whole-body scans are 256x1024 per view (4:1), or two views side by side (2:1)"),
    _rule("NM", "WHOLEBODY", Measure.BODY_MM, Band(mismatch_low=800, uncertain_low=1200),
          "a whole-body scan shows the adult body head to feet (150-200 cm) or most of it"),
    _rule("XR", "CHEST LUNG HEART", Measure.BODY_ASPECT,
          Band(uncertain_high=1.5, mismatch_high=1.8),
          "a PA chest shows the thorax on a 35x43 cm field, about as wide as tall (ratio at most"
          " 1.25); a limb is at least twice as long as it is wide"),
)  # fmt: skip


class Verdict(StrEnum):
    PLAUSIBLE = "PLAUSIBLE"
    UNCERTAIN = "UNCERTAIN"
    IMPLAUSIBLE = "IMPLAUSIBLE"
    NOT_JUDGED = "NOT_JUDGED"


@dataclass(frozen=True)
class Body:
    """The bounding box of the largest non-background region of a frame, in pixels."""

    rows: int
    columns: int
    inside: bool  # the region does not touch the edge of the field: its extent is whole


@dataclass(frozen=True)
class Geometry:
    """What the header says of the image's size: Rows, Columns, (row, column) mm per pixel."""

    rows: int
    columns: int
    spacing: tuple[float, float] | None


@dataclass(frozen=True)
class Finding:
    measure: Measure
    value: float
    verdict: Verdict
    band: Band
    source: str

    def reason(self) -> str:
        low = self.band.mismatch_low if self.band.mismatch_low is not None else "-"
        high = self.band.mismatch_high if self.band.mismatch_high is not None else "-"
        return f"{self.measure.value} {self.value:g} (implausible outside {low}..{high})"


@dataclass(frozen=True)
class Plausibility:
    verdict: Verdict
    findings: tuple[Finding, ...]
    measured: dict[str, float]


def body_region(frame: np.ndarray, modality: str) -> Body | None:
    """The largest connected non-background region of a uint8 display frame (None: none)."""
    grey = frame if frame.ndim == 2 else frame.mean(axis=2)
    grey = np.asarray(grey, dtype=np.uint8)
    projection = modality in PROJECTION_MODALITIES
    body = grey >= (PROJECTION_BACKGROUND_GREY if projection else BACKGROUND_GREY)
    k = max(1, round(min(grey.shape) / 100))
    kernel = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
    if projection:  # the flat white unexposed areas and their blurred edges are not the body
        unexposed = cv2.dilate((grey >= PROJECTION_UNEXPOSED_GREY).astype(np.uint8), kernel)
        body &= unexposed == 0
    mask = cv2.morphologyEx(body.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[i, :4])
    inside = x > 0 and y > 0 and x + w < grey.shape[1] and y + h < grey.shape[0]
    return Body(h, w, inside)


def measures(geometry: Geometry, body: Body | None) -> dict[Measure, tuple[float, bool]]:
    """Each measure the image gives, with whether it is whole (False: a lower bound only)."""
    out: dict[Measure, tuple[float, bool]] = {
        Measure.MATRIX: (min(geometry.rows, geometry.columns), True)
    }
    sy, sx = geometry.spacing or (1.0, 1.0)
    fy, fx = geometry.rows * sy, geometry.columns * sx
    out[Measure.FIELD_ASPECT] = (round(max(fy, fx) / min(fy, fx), 2), True)
    if geometry.spacing is not None:
        out[Measure.FIELD_MM] = (round(min(fy, fx)), True)
    if body is not None:
        by, bx = body.rows * sy, body.columns * sx
        out[Measure.BODY_ASPECT] = (round(max(by, bx) / max(min(by, bx), 1e-6), 2), body.inside)
        if geometry.spacing is not None:
            out[Measure.BODY_MM] = (round(max(by, bx)), body.inside)
    return out


def _judge(value: float, whole: bool, band: Band) -> Verdict:
    """Too small counts only for a whole measure; a cut-off one may be larger than it looks."""
    if band.mismatch_high is not None and value > band.mismatch_high:
        return Verdict.IMPLAUSIBLE
    if whole and band.mismatch_low is not None and value < band.mismatch_low:
        return Verdict.IMPLAUSIBLE
    if band.uncertain_high is not None and value > band.uncertain_high:
        return Verdict.UNCERTAIN
    if whole and band.uncertain_low is not None and value < band.uncertain_low:
        return Verdict.UNCERTAIN
    if not whole and band.mismatch_high is None:
        return Verdict.NOT_JUDGED
    return Verdict.PLAUSIBLE


def plausibility(
    modality_family: str,
    region: str,
    geometry: Geometry,
    body: Body | None,
    rules: Sequence[Rule] = RULES,
) -> Plausibility:
    """Every rule of the declared (modality family, region) applied to what the image gives."""
    given = measures(geometry, body)
    found: list[Finding] = []
    for rule in rules:
        if modality_family not in rule.modalities or region not in rule.regions:
            continue
        if rule.measure not in given:
            continue
        value, whole = given[rule.measure]
        found.append(Finding(rule.measure, value, _judge(value, whole, rule.band), rule.band,
                             rule.source))  # fmt: skip
    verdicts = {f.verdict for f in found}
    if Verdict.IMPLAUSIBLE in verdicts:
        verdict = Verdict.IMPLAUSIBLE
    elif Verdict.UNCERTAIN in verdicts:
        verdict = Verdict.UNCERTAIN
    elif Verdict.PLAUSIBLE in verdicts:
        verdict = Verdict.PLAUSIBLE
    else:
        verdict = Verdict.NOT_JUDGED
    return Plausibility(verdict, tuple(found), {m.value: v for m, (v, _) in given.items()})
