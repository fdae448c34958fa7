from dataclasses import replace
from datetime import date, timedelta

import pytest

from service.verify.imaging.checks import (
    DuplicateMatch,
    duplicate_check,
    header_checks,
    unreadable_check,
)
from service.verify.imaging.identity import dicom_name, ehr_name
from service.verify.imaging.results import FindingCode as F
from service.verify.imaging.results import Outcome
from tests.verify.imaging_cases import OUR_ISSUERS, cases, dicom_files, headers, order

HEADER_CODES = [
    F.PATIENT_ID_MISMATCH, F.DEMOGRAPHICS_MISMATCH, F.MIXED_PATIENTS, F.ACCESSION_MISMATCH,
    F.MODALITY_MISMATCH, F.BODY_PART_MISMATCH, F.LATERALITY_MISMATCH, F.DATE_OUT_OF_WINDOW,
    F.STUDY_INCOMPLETE, F.SLICE_GAP,
]  # fmt: skip
NOT_HEADER = {F.DUPLICATE_IMAGE.value, F.UNREADABLE_IMAGE.value, F.CONTENT_MISMATCH.value}


def run(case, hs=None, o=None, issuers=OUR_ISSUERS, window=30):
    return header_checks(
        o or order(case), headers(case) if hs is None else hs,
        date_window_days=window, accepted_issuers=issuers,
    )  # fmt: skip


def failed(results):
    return {r.code for r in results if r.failed}


def by_code(results):
    return {r.code: r for r in results}


def test_one_result_per_header_code_in_check_order():
    results = run("dev-041")
    assert [r.code for r in results] == HEADER_CODES
    assert not failed(results)
    assert all(r.summary and r.summary.endswith(".") for r in results)


# --- identity -----------------------------------------------------------------------------


def test_patient_id_differs():
    hs = [replace(h, patient_id="99999999") for h in headers("dev-041")]
    r = by_code(run("dev-041", hs))
    assert r[F.PATIENT_ID_MISMATCH].failed and r[F.PATIENT_ID_MISMATCH].severity == "high"
    assert "99999999" in r[F.PATIENT_ID_MISMATCH].dicom
    assert r[F.PATIENT_ID_MISMATCH].expected[0] == "77100196"
    assert len(r[F.PATIENT_ID_MISMATCH].instances) == 5  # a few, not all nine
    assert r[F.DEMOGRAPHICS_MISMATCH].outcome is Outcome.NOT_APPLICABLE
    assert failed(r.values()) == {F.PATIENT_ID_MISMATCH}


def test_other_assigning_authority():
    assert failed(run("dev-003")) == {F.PATIENT_ID_MISMATCH}


def test_issuer_without_qualifiers_needs_the_configured_name():
    assert not failed(run("dev-001"))  # HOSPITAL.EXAMPLE, no qualifiers
    assert failed(run("dev-001", issuers=())) == {F.PATIENT_ID_MISMATCH}
    assert not failed(run("dev-001", issuers=("hospital.example",)))  # case-insensitive


def test_universal_entity_id_equal_to_the_mrn_system_is_ours_without_configuration():
    assert not failed(run("dev-041", issuers=()))  # qualifiers carry http://hospital.example/mrn


def test_absent_issuer_is_not_a_mismatch():
    assert headers("dev-018")[0].issuer is None
    assert not failed(run("dev-018", issuers=()))


def test_no_mrn_could_not_check():
    r = by_code(run("dev-041", o=replace(order("dev-041"), mrn=None)))
    assert r[F.PATIENT_ID_MISMATCH].outcome is Outcome.COULD_NOT_CHECK


@pytest.mark.parametrize(
    "pn,family,given,same",
    [
        ("ABBOTT^FELIX^ROSE^^", "Abbott", ("Felix", "Rose"), True),  # trailing ^, middle name
        ("Novak^Kenji^M", "Novak", ("Kenji", "M"), True),  # mixed case
        ("MEYER^ANNA", "Meyer", ("Anna",), True),
        ("MEYER^ANNA^^DR", "Meyer", ("Anna",), True),  # prefix not compared
        ("MEYER^ANNA^B", "Meyer", ("Anna",), False),  # a middle name the Patient lacks
        ("MEYER^ANNA", "Meyer", ("Anna", "B"), False),
        ("QUINN^MARIA", "Jensen", ("Maria",), False),
        ("MEYER", "Meyer", (), True),
    ],
)
def test_name_components(pn, family, given, same):
    assert (dicom_name(pn) == ehr_name(family, given)) is same


def test_demographics_case_variations_pass():
    hs = [replace(h, patient_name="martins^SOFIA^^^") for h in headers("dev-041")]
    assert not failed(run("dev-041", hs))


@pytest.mark.parametrize(
    "change",
    [{"patient_name": "MARTINS^SONJA"}, {"birth_date": date(1987, 6, 16)}, {"sex": "M"}],
)
def test_demographics_mismatch(change):
    hs = [replace(h, **change) for h in headers("dev-041")]
    r = by_code(run("dev-041", hs))
    assert failed(r.values()) == {F.DEMOGRAPHICS_MISMATCH}
    assert r[F.DEMOGRAPHICS_MISMATCH].severity == "high"


def test_unknown_gender_is_not_compared():
    o = replace(order("dev-007"), gender="unknown")
    assert not failed(run("dev-007", o=o))
    assert failed(run("dev-007")) == {F.DEMOGRAPHICS_MISMATCH}


def test_mixed_patients_with_a_right_majority_suppresses_identity_codes():
    r = by_code(run("dev-004"))  # 1 of 9 slices carries another patient
    assert failed(r.values()) == {F.MIXED_PATIENTS}
    assert r[F.PATIENT_ID_MISMATCH].outcome is Outcome.NOT_APPLICABLE
    assert len(r[F.MIXED_PATIENTS].instances) == 1


def test_mixed_patients_with_a_wrong_majority_also_fails_patient_id():
    hs = list(headers("dev-041"))
    hs = [
        replace(h, patient_id="61355114", patient_name="HANSEN^PETER") if i < 6 else h
        for i, h in enumerate(hs)
    ]
    assert failed(run("dev-041", hs)) == {F.MIXED_PATIENTS, F.PATIENT_ID_MISMATCH}


def test_same_id_other_name_in_one_instance_is_mixed():
    hs = list(headers("dev-041"))
    hs[3] = replace(hs[3], patient_name="HANSEN^PETER")
    assert failed(run("dev-041", hs)) == {F.MIXED_PATIENTS}


# --- acquisition --------------------------------------------------------------------------


def test_accession():
    assert failed(run("dev-014")) == {F.ACCESSION_MISMATCH}
    hs = [replace(h, accession=None) for h in headers("dev-041")]
    assert by_code(run("dev-041", hs))[F.ACCESSION_MISMATCH].outcome is Outcome.COULD_NOT_CHECK
    o = replace(order("dev-014"), accession=None)
    assert by_code(run("dev-014", o=o))[F.ACCESSION_MISMATCH].outcome is Outcome.NOT_APPLICABLE


def test_cr_and_dx_both_answer_a_radiograph_order():
    assert order("dev-044").modalities == ("DX",)
    hs = [replace(h, modality="CR") for h in headers("dev-044")]
    assert not failed(run("dev-044", hs))
    hs = [replace(h, modality="CT") for h in headers("dev-044")]
    assert failed(run("dev-044", hs)) == {F.MODALITY_MISMATCH}


def test_presentation_state_is_not_a_modality_mismatch():
    h = headers("dev-044")[0]
    hs = [h, replace(h, sop_uid="1.2.3.4", modality="PR", series_uid="1.2.3")]
    r = by_code(run("dev-044", hs))
    assert r[F.MODALITY_MISMATCH].outcome is Outcome.PASSED


def test_modality_cases():
    assert failed(run("dev-006")) == {F.MODALITY_MISMATCH}
    assert failed(run("dev-008")) == {F.MODALITY_MISMATCH}


def test_body_part_parent_and_child_are_compatible():
    assert headers("dev-022")[0].body_part == "EXTREMITY"  # order: lower leg
    assert headers("dev-045")[0].body_part == "HEAD"  # order: brain
    assert headers("dev-027")[0].anatomic_regions == ("39607008",)  # LUNG + extra ARS, chest
    for case in ("dev-022", "dev-045", "dev-027"):
        r = by_code(run(case))[F.BODY_PART_MISMATCH]
        assert r.outcome is Outcome.PASSED, case


def test_body_part_mismatch_from_term_and_from_region_sequence():
    assert failed(run("dev-033")) == {F.BODY_PART_MISMATCH}  # HEAD for an abdomen order
    assert failed(run("dev-034")) == {F.BODY_PART_MISMATCH}  # ARS brain for a shoulder


def test_body_part_sibling_and_unknown():
    hs = [replace(h, body_part="HEART") for h in headers("dev-027")]  # order chest: inside
    assert not failed(run("dev-027", hs))
    o = replace(order("dev-027"), body_site="39607008")  # order lung, DICOM heart: siblings
    assert failed(run("dev-027", hs, o=o)) == {F.BODY_PART_MISMATCH}
    hs = [replace(h, body_part="ABD", anatomic_regions=()) for h in headers("dev-027")]
    r = by_code(run("dev-027", hs))[F.BODY_PART_MISMATCH]
    assert r.outcome is Outcome.COULD_NOT_CHECK


def test_laterality():
    r = by_code(run("dev-031"))[F.LATERALITY_MISMATCH]
    assert r.failed and r.severity == "high" and r.dicom == ("R",) and r.expected == ("L",)
    assert by_code(run("dev-028"))[F.LATERALITY_MISMATCH].outcome is Outcome.PASSED
    hs = [replace(h, laterality="U") for h in headers("dev-031")]
    r = by_code(run("dev-031", hs))[F.LATERALITY_MISMATCH]
    assert r.outcome is Outcome.NOT_APPLICABLE
    assert by_code(run("dev-041"))[F.LATERALITY_MISMATCH].outcome is Outcome.NOT_APPLICABLE


@pytest.mark.parametrize("days,out", [(14, False), (-3, False), (30, False), (-30, False),
                                      (31, True), (-31, True)])  # fmt: skip
def test_date_window(days, out):
    ordered = date(2025, 8, 8)  # dev-041's order date
    hs = [replace(h, study_date=ordered + timedelta(days=days)) for h in headers("dev-041")]
    assert (F.DATE_OUT_OF_WINDOW in failed(run("dev-041", hs))) is out


def test_date_from_the_order_not_the_study_start():
    assert failed(run("dev-023")) == {F.DATE_OUT_OF_WINDOW}
    assert failed(run("dev-024")) == {F.DATE_OUT_OF_WINDOW}
    hs = [replace(h, study_date=None) for h in headers("dev-041")]
    r = by_code(run("dev-041", hs))[F.DATE_OUT_OF_WINDOW]
    assert r.outcome is Outcome.COULD_NOT_CHECK


# --- completeness -------------------------------------------------------------------------


def _without(case, numbers, unlist=False):
    hs = [h for h in headers(case) if h.instance_number not in numbers]
    o = order(case)
    if unlist:
        kept = {h.sop_uid for h in hs}
        series = [replace(s, instance_uids=tuple(u for u in s.instance_uids if u in kept),
                          number_of_instances=len(hs)) for s in o.series]  # fmt: skip
        o = replace(o, series=tuple(series), number_of_instances=len(hs))
    return run(case, hs, o=o)


def test_missing_last_slices_are_incomplete_only():
    assert failed(_without("dev-041", {8, 9})) == {F.STUDY_INCOMPLETE}


def test_missing_listed_middle_slice_is_both():
    r = by_code(_without("dev-041", {5}))
    assert failed(r.values()) == {F.STUDY_INCOMPLETE, F.SLICE_GAP}
    assert len(r[F.STUDY_INCOMPLETE].instances) == 1
    assert len(r[F.SLICE_GAP].instances) == 2  # the slices either side of the gap


def test_missing_unlisted_middle_slice_is_a_gap_only():
    assert failed(_without("dev-041", {5}, unlist=True)) == {F.SLICE_GAP}


def test_missing_series():
    r = by_code(run("dev-002"))[F.STUDY_INCOMPLETE]
    assert r.failed and r.evidence["missing_series"]


def test_renumbered_slices_without_a_position_jump_are_no_gap():
    hs = [replace(h, instance_number=(h.instance_number or 0) + (h.instance_number or 0) // 5)
          for h in headers("dev-041")]  # fmt: skip
    assert sorted(h.instance_number for h in hs) == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert not failed(run("dev-041", hs))


def test_multiframe_and_projection_images_have_no_slice_check():
    for case in ("dev-005", "dev-012", "dev-044"):
        r = by_code(run(case))[F.SLICE_GAP]
        assert r.outcome is Outcome.NOT_APPLICABLE, case


def test_empty_pacs():
    r = by_code(run("dev-041", []))
    assert r[F.STUDY_INCOMPLETE].failed
    assert r[F.PATIENT_ID_MISMATCH].outcome is Outcome.COULD_NOT_CHECK


# --- pixel results ------------------------------------------------------------------------


def test_unreadable_check():
    r = unreadable_check([("1.2.3", "truncated JPEG 2000 codestream")], checked=9)
    assert r.failed and r.instances == ("1.2.3",) and r.code is F.UNREADABLE_IMAGE
    assert unreadable_check([], checked=9).outcome is Outcome.PASSED
    assert unreadable_check([], checked=0).outcome is Outcome.COULD_NOT_CHECK


def test_duplicate_check():
    match = DuplicateMatch("1.2.3", "9.8.7", 4, "pixels")
    r = duplicate_check([match, DuplicateMatch("1.2.4", "9.8.7", None, "sop_uid")], checked=2)
    assert r.failed and r.severity == "high" and r.instances == ("1.2.3", "1.2.4")
    assert r.evidence["matches"][0] == {
        "sop_uid": "1.2.3", "other_study_uid": "9.8.7", "distance": 4, "kind": "pixels",
    }  # fmt: skip
    assert duplicate_check([], checked=3).outcome is Outcome.PASSED
    assert duplicate_check([], checked=0).outcome is Outcome.COULD_NOT_CHECK


# --- the dev set --------------------------------------------------------------------------


def test_dev_set_header_codes():
    """Every case of ../shared/data/studies: recall 1.0 per header code, no false alarm on a
    clean case, the exact header-code subset on every case."""
    rows = cases()
    assert len(rows) >= 40, "the studies dataset is missing or incomplete"
    table = {c: {"expected": 0, "found": 0, "false_alarms": 0} for c in HEADER_CODES}
    wrong = []
    for row in rows:
        case = row["case_id"]
        assert dicom_files(case), f"{case}: no DICOM files"
        expected = {F(c) for c in row["expected"].split() if c not in NOT_HEADER}
        found = failed(run(case))
        for code in HEADER_CODES:
            table[code]["expected"] += code in expected
            table[code]["found"] += code in expected and code in found
            table[code]["false_alarms"] += code in found and code not in expected
        if found != expected:
            wrong.append((case, sorted(expected), sorted(found)))
    print(f"\n{'code':24} expected found false_alarms  ({len(rows)} cases)")
    for code, n in table.items():
        print(f"{code.value:24} {n['expected']:8} {n['found']:5} {n['false_alarms']:12}")
    assert not wrong, wrong
    for code, n in table.items():
        assert n["expected"] >= 1, f"no case exercises {code}"
        assert n["found"] == n["expected"] and n["false_alarms"] == 0, code
    clean = [r["case_id"] for r in rows if not r["expected"].strip()]
    assert clean and not [c for c in clean if failed(run(c))]
