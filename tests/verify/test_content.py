"""CONTENT_MISMATCH verdicts from the nearest labelled references (pure rules, no models)."""

from __future__ import annotations

from service.verify.imaging.content import (
    ContentBands,
    Label,
    Reference,
    Verdict,
    compatible,
    content_check,
    declared_label,
    judge_image,
)
from service.verify.imaging.results import Outcome

BANDS = ContentBands(evidence_distance=0.35, temperature=0.05, match_p=0.8, mismatch_p=0.9)
CT_ABDOMEN = Label("CT", "ABDOMEN")
CT_HEAD = Label("CT", "HEAD")


def ref(label: Label, distance: float, n: int = 0) -> Reference:
    return Reference(f"2.25.{n}", f"2.25.{n}.1", label, distance)


def test_labels_are_compatible_by_modality_family_and_containing_region() -> None:
    assert compatible(Label("CR", "CHEST"), Label("DX", "LUNG"))  # CR/DX one family, LUNG in CHEST
    assert compatible(Label("CT", "PANCREAS"), CT_ABDOMEN)
    assert not compatible(CT_HEAD, CT_ABDOMEN)
    assert not compatible(Label("MR", "HEAD"), CT_HEAD)
    assert declared_label("dx", "CHEST") == Label("XR", "CHEST")
    assert declared_label("CT", None) is None and declared_label(None, "HEAD") is None
    assert declared_label("CT", "NOT A REGION") is None


def test_near_references_of_another_label_are_a_mismatch_with_their_evidence() -> None:
    refs = [ref(CT_HEAD, 0.10, 1), ref(CT_HEAD, 0.12, 2), ref(CT_ABDOMEN, 0.30, 3)]
    image = judge_image("1.2.3", CT_ABDOMEN, refs, BANDS, "m")
    assert image.verdict is Verdict.MISMATCH and image.shows == CT_HEAD
    assert image.p_other > 0.95
    check = content_check(CT_ABDOMEN, [image])
    assert check.outcome is Outcome.FAILED and check.instances == ("1.2.3",)
    assert check.dicom == ("CT HEAD",) and check.expected == ("CT ABDOMEN",)
    nearest = check.evidence["images"][0]["nearest"]
    assert [n["label"] for n in nearest] == ["CT HEAD", "CT HEAD", "CT ABDOMEN"]


def test_near_references_of_the_declared_or_a_contained_label_are_a_match() -> None:
    refs = [ref(Label("CT", "PANCREAS"), 0.08), ref(CT_HEAD, 0.30)]
    image = judge_image("1.2.3", CT_ABDOMEN, refs, BANDS, "m")
    assert image.verdict is Verdict.MATCH
    assert content_check(CT_ABDOMEN, [image]).outcome is Outcome.PASSED


def test_a_close_call_is_uncertain_and_routed_to_a_person() -> None:
    refs = [ref(CT_HEAD, 0.20), ref(CT_ABDOMEN, 0.205)]
    image = judge_image("1.2.3", CT_ABDOMEN, refs, BANDS, "m")
    assert image.verdict is Verdict.UNCERTAIN and 0.2 < image.p_other < 0.8
    check = content_check(CT_ABDOMEN, [image])
    assert check.outcome is Outcome.UNCERTAIN and not check.failed


def test_references_beyond_the_evidence_distance_say_nothing() -> None:
    refs = [ref(CT_HEAD, 0.5), ref(CT_HEAD, 0.6)]
    image = judge_image("1.2.3", CT_ABDOMEN, refs, BANDS, "m")
    assert image.verdict is Verdict.NO_EVIDENCE and image.shows is None
    check = content_check(CT_ABDOMEN, [image])
    assert check.outcome is Outcome.NOT_APPLICABLE
    assert check.evidence["images"][0]["nearest"][0]["distance"] == 0.5  # still shown


def test_one_mismatching_image_fails_the_study_and_names_only_it() -> None:
    good = judge_image("1.1", CT_ABDOMEN, [ref(CT_ABDOMEN, 0.1)], BANDS, "m")
    bad = judge_image("1.2", CT_ABDOMEN, [ref(CT_HEAD, 0.1)], BANDS, "m")
    check = content_check(CT_ABDOMEN, [good, bad])
    assert check.outcome is Outcome.FAILED and check.instances == ("1.2",)


def test_without_an_agreed_label_the_check_does_not_apply() -> None:
    assert content_check(None, []).outcome is Outcome.NOT_APPLICABLE


def test_a_patient_whose_priors_are_far_while_another_patient_is_near_is_uncertain() -> None:
    from service.verify.imaging.content import PriorComparison, lookalike_check

    near_other = PriorComparison("1.1", own=0.40, other=0.05, other_study_uid="2.25.9")
    like_own = PriorComparison("1.2", own=0.05, other=0.30, other_study_uid="2.25.9")
    odd = lookalike_check([near_other, like_own], margin=0.1)
    assert odd.outcome is Outcome.UNCERTAIN and odd.instances == ("1.1",)
    assert odd.code.value == "PATIENT_ID_MISMATCH" and not odd.failed
    assert lookalike_check([like_own], margin=0.1).outcome is Outcome.PASSED
    no_priors = PriorComparison("1.3", own=None, other=0.2, other_study_uid="2.25.9")
    assert lookalike_check([no_priors], margin=0.1).outcome is Outcome.NOT_APPLICABLE
