"""Physical plausibility of an image for its declared (modality, body part), on synthetic frames
of known geometry: body size in mm, matrix, field and body shape, and how it joins the vote."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydicom import Dataset

from service.verify.imaging.content import (
    ContentBands,
    ImageContent,
    Label,
    Reference,
    Verdict,
    content_check,
    judge_image,
    with_plausibility,
)
from service.verify.imaging.headers import from_dataset
from service.verify.imaging.plausibility import (
    RULES,
    Body,
    Geometry,
    Measure,
    Plausibility,
    body_region,
    plausibility,
)
from service.verify.imaging.plausibility import Verdict as Physical
from service.verify.imaging.results import Outcome

BANDS = ContentBands(evidence_distance=0.35, temperature=0.05, match_p=0.8, mismatch_p=0.9)


def section(matrix: int, spacing: float, width_mm: float, depth_mm: float) -> np.ndarray:
    """A CT-like display frame: an ellipse of soft tissue (grey 120) with a bright rim on black
    air, `width_mm` x `depth_mm` at `spacing` mm per pixel, centred."""
    frame = np.zeros((matrix, matrix), np.uint8)
    axes = (round(width_mm / spacing / 2), round(depth_mm / spacing / 2))
    cv2.ellipse(frame, (matrix // 2, matrix // 2), axes, 0, 0, 360, 255, -1)
    inner = (max(1, axes[0] - 8), max(1, axes[1] - 8))
    cv2.ellipse(frame, (matrix // 2, matrix // 2), inner, 0, 0, 360, 120, -1)
    return frame


def judge(modality: str, region: str, frame: np.ndarray, spacing: float | None) -> Physical:
    geometry = Geometry(frame.shape[0], frame.shape[1], (spacing, spacing) if spacing else None)
    return plausibility(modality, region, geometry, body_region(frame, modality)).verdict


def test_a_head_sized_section_is_a_head_and_not_an_abdomen() -> None:
    head = section(512, 0.47, 150, 180)  # an adult head: 15 x 18 cm
    assert judge("CT", "HEAD", head, 0.47) is Physical.PLAUSIBLE
    assert judge("CT", "BRAIN", head, 0.47) is Physical.PLAUSIBLE
    assert judge("CT", "ABDOMEN", head, 0.47) is Physical.IMPLAUSIBLE
    assert judge("CT", "PANCREAS", head, 0.47) is Physical.IMPLAUSIBLE


def test_an_abdomen_sized_section_is_an_abdomen_and_not_a_head() -> None:
    abdomen = section(512, 0.8, 340, 250)
    assert judge("CT", "ABDOMEN", abdomen, 0.8) is Physical.PLAUSIBLE
    assert judge("CT", "HEAD", abdomen, 0.8) is Physical.IMPLAUSIBLE


def test_near_a_limit_a_person_looks() -> None:
    assert judge("CT", "HEAD", section(512, 0.6, 240, 200), 0.6) is Physical.UNCERTAIN
    assert judge("CT", "ABDOMEN", section(512, 0.6, 225, 180), 0.6) is Physical.UNCERTAIN


def test_a_section_cut_by_the_field_is_only_judged_too_large_never_too_small() -> None:
    cut = section(128, 0.66, 200, 200)  # 85 mm field: the body fills it and is cut
    body = body_region(cut, "CT")
    assert body is not None and not body.inside
    assert judge("CT", "ABDOMEN", cut, 0.66) is Physical.NOT_JUDGED
    assert judge("CT", "CHEST", cut, 0.66) is Physical.NOT_JUDGED
    wide = section(512, 0.9, 600, 300)  # cut at 46 cm: still wider than any head
    assert judge("CT", "HEAD", wide, 0.9) is Physical.IMPLAUSIBLE


def test_without_pixel_spacing_sizes_are_not_judged() -> None:
    assert judge("CT", "ABDOMEN", section(512, 0.47, 150, 180), None) is Physical.NOT_JUDGED
    assert judge("CT", "HEAD", section(512, 0.9, 340, 250), None) is Physical.NOT_JUDGED


@pytest.mark.parametrize(
    ("matrix", "spacing", "expected"),
    [(64, 1.0, Physical.IMPLAUSIBLE), (64, 3.0, Physical.IMPLAUSIBLE),
     (160, 1.0, Physical.UNCERTAIN), (256, 0.6, Physical.PLAUSIBLE),
     (512, 0.35, Physical.PLAUSIBLE), (384, 3.25, Physical.IMPLAUSIBLE)],
)  # fmt: skip
def test_a_shoulder_mr_has_a_diagnostic_matrix_and_a_shoulder_sized_field(
    matrix: int, spacing: float, expected: Physical
) -> None:
    frame = section(matrix, spacing, matrix * spacing * 0.7, matrix * spacing * 0.6)
    assert judge("MR", "SHOULDER", frame, spacing) is expected


def test_a_whole_body_scan_is_tall_and_narrow() -> None:
    scan = np.zeros((1024, 256), np.uint8)
    scan[120:900, 90:170] = 140  # a body 1.76 m tall at 2.26 mm
    assert judge("NM", "WHOLEBODY", scan, 2.26) is Physical.PLAUSIBLE
    assert judge("NM", "WHOLEBODY", scan, None) is Physical.PLAUSIBLE  # aspect from pixels
    square = np.full((1024, 1024), 140, np.uint8)  # a chest film's square field
    assert judge("NM", "WHOLEBODY", square, None) is Physical.IMPLAUSIBLE
    short = scan.copy()
    assert judge("NM", "WHOLEBODY", short, 0.4) is Physical.IMPLAUSIBLE  # a 31 cm "body"


def radiograph(body_columns: tuple[int, int], exposed: tuple[int, int]) -> np.ndarray:
    """A radiograph display: white unexposed sides, dark direct exposure, a grey body."""
    frame = np.full((1024, 1024), 255, np.uint8)
    frame[:, exposed[0] : exposed[1]] = 15
    frame[:, body_columns[0] : body_columns[1]] = 150
    return frame


def test_a_chest_film_is_about_square_and_a_limb_is_long_and_narrow() -> None:
    chest = radiograph((40, 990), (0, 1024))
    leg = radiograph((400, 640), (230, 770))
    body = body_region(leg, "CR")
    assert body is not None and body.columns < 300  # the white unexposed sides are not body
    assert judge("XR", "CHEST", chest, None) is Physical.PLAUSIBLE
    assert judge("XR", "LUNG", chest, None) is Physical.PLAUSIBLE
    assert judge("XR", "CHEST", leg, None) is Physical.IMPLAUSIBLE
    assert judge("XR", "CHEST", radiograph((300, 880), (250, 930)), None) is Physical.UNCERTAIN


def test_a_label_without_rules_and_an_empty_frame_are_not_judged() -> None:
    assert judge("US", "HEART", section(256, 0.3, 50, 50), 0.3) is Physical.NOT_JUDGED
    assert body_region(np.zeros((64, 64), np.uint8), "CT") is None
    found = plausibility("CT", "HEAD", Geometry(512, 512, (0.5, 0.5)), None)
    assert found.verdict is Physical.NOT_JUDGED and "body_mm" not in found.measured


def test_every_rule_says_where_its_range_comes_from_and_its_bands_are_ordered() -> None:
    for rule in RULES:
        assert len(rule.source) > 30 and rule.modalities and rule.regions
        b = rule.band
        lows = [v for v in (b.mismatch_low, b.uncertain_low) if v is not None]
        highs = [v for v in (b.uncertain_high, b.mismatch_high) if v is not None]
        assert lows == sorted(lows) and highs == sorted(highs)
        assert not lows or not highs or max(lows) < min(highs)
    assert {r.measure for r in RULES} == set(Measure)


def image(verdict: Verdict) -> ImageContent:
    label = Label("CT", "ABDOMEN") if verdict is Verdict.MATCH else Label("CT", "HEAD")
    refs = [] if verdict is Verdict.NO_EVIDENCE else [Reference("2.25.1", "2.25.2", label, 0.1)]
    found = judge_image("1.2.3", Label("CT", "ABDOMEN"), refs, BANDS, "m")
    assert found.verdict is verdict
    return found


def physical(frame: np.ndarray, spacing: float) -> Plausibility:
    geometry = Geometry(frame.shape[0], frame.shape[1], (spacing, spacing))
    return plausibility("CT", "ABDOMEN", geometry, body_region(frame, "CT"))


def test_the_physical_rules_overrule_a_lenient_vote_and_never_pass_an_image_alone() -> None:
    head, abdomen = section(512, 0.47, 150, 180), section(512, 0.8, 340, 250)
    implausible, plausible = physical(head, 0.47), physical(abdomen, 0.8)
    near_edge = physical(section(512, 0.6, 225, 180), 0.6)
    combined = with_plausibility(image(Verdict.MATCH), implausible)
    assert combined.verdict is Verdict.MISMATCH and combined.voted is Verdict.MATCH
    check = content_check(Label("CT", "ABDOMEN"), [combined])
    assert check.outcome is Outcome.FAILED
    assert check.dicom[0].startswith("physically implausible: body_mm 1")
    assert check.evidence["images"][0]["plausibility"]["verdict"] == "IMPLAUSIBLE"
    assert with_plausibility(image(Verdict.NO_EVIDENCE), implausible).verdict is Verdict.MISMATCH
    assert with_plausibility(image(Verdict.MISMATCH), plausible).verdict is Verdict.MISMATCH
    assert with_plausibility(image(Verdict.NO_EVIDENCE), plausible).verdict is Verdict.NO_EVIDENCE
    assert with_plausibility(image(Verdict.MATCH), near_edge).verdict is Verdict.UNCERTAIN
    passed = with_plausibility(image(Verdict.MATCH), plausible)
    assert passed.verdict is Verdict.MATCH and passed.voted is None
    assert content_check(Label("CT", "ABDOMEN"), [passed]).dicom == ("CT ABDOMEN",)


def test_the_header_gives_the_pixel_spacing_from_wherever_it_is_kept() -> None:
    def header(**elements: object) -> Dataset:
        ds = Dataset()
        ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID = "1.1", "1.2", "1.3"
        for keyword, value in elements.items():
            setattr(ds, keyword, value)
        return ds

    assert from_dataset(header(PixelSpacing=[0.5, 0.4])).pixel_spacing == (0.5, 0.4)
    assert from_dataset(header(ImagerPixelSpacing=[0.14, 0.14])).pixel_spacing == (0.14, 0.14)
    assert from_dataset(header(PixelSpacing=[0, 0])).pixel_spacing is None  # "0\0": unknown
    assert from_dataset(header()).pixel_spacing is None
    measures, group = Dataset(), Dataset()
    measures.PixelSpacing = [0.39, 0.39]
    group.PixelMeasuresSequence = [measures]
    enhanced = header(SharedFunctionalGroupsSequence=[group])
    assert from_dataset(enhanced).pixel_spacing == (0.39, 0.39)
    assert Body(10, 10, True).inside
