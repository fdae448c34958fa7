import pytest
from pydicom.sr.codedict import codes

from service.verify.imaging.bodyparts import (
    REGIONS,
    ancestors,
    compatible,
    region_for_code,
    region_for_term,
    snomed_for_term,
)

# The table of ../shared/data/README.md (studies section): term, SNOMED CT code, parent.
README = [
    ("CHEST", "51185008", None), ("LUNG", "39607008", "CHEST"), ("HEART", "80891009", "CHEST"),
    ("HEAD", "69536005", None), ("BRAIN", "12738006", "HEAD"), ("WHOLEBODY", "38266002", None),
    ("ABDOMEN", "113345001", None), ("PANCREAS", "15776009", "ABDOMEN"),
    ("PELVIS", "12921003", None), ("EXTREMITY", "66019005", None),
    ("LEG", "30021000", "EXTREMITY"), ("SHOULDER", "16982005", "EXTREMITY"),
]  # fmt: skip


@pytest.mark.parametrize("term,code,parent", README)
def test_readme_table(term, code, parent):
    assert region_for_term(term) == term and region_for_code(code) == term
    if parent:
        assert parent in ancestors(term)
        assert compatible(code, parent, ()) and compatible(REGIONS[parent].codes[0], term, ())


def test_codes_agree_with_the_cid_4031_table_in_pydicom():
    """Every region that CID 4031 names carries CID 4031's current code first."""
    cid = {
        getattr(codes.SCT, name).meaning.casefold(): getattr(codes.SCT, name).value
        for name in codes.cid4031.concepts
    }
    matched = 0
    for name, region in REGIONS.items():
        if region.meaning.casefold() in cid:
            assert region.codes[0] == cid[region.meaning.casefold()], name
            matched += 1
    assert matched >= 80


def test_common_terms_are_present():
    for term in ("KNEE HAND FOOT ANKLE ELBOW WRIST HIP SPINE CSPINE TSPINE LSPINE NECK BREAST ARM"
                 " THIGH SKULL ABDOMENPELVIS CHESTABDOMEN CHESTABDPELVIS").split():  # fmt: skip
        assert snomed_for_term(term), term


@pytest.mark.parametrize(
    "ordered,term,regions,expected",
    [
        ("51185008", "LUNG", (), True),  # child of the ordered chest
        ("816094009", "HEART", (), True),  # the current CHEST code
        ("12738006", "HEAD", (), True),  # parent of the ordered brain
        ("30021000", "EXTREMITY", (), True),
        ("72696002", "KNEE", (), True),
        ("72696002", "PATELLA", (), True),
        ("51185008", "CHESTABDPELVIS", (), True),  # a scan that covers the chest
        ("39607008", "HEART", (), False),  # siblings
        ("113345001", "HEAD", (), False),
        ("16982005", "KNEE", (), False),
        ("16982005", None, ("12738006",), False),  # region sequence only
        ("16982005", None, ("T-A0100", "16982005"), True),
        ("51185008", "LUNG", ("12738006",), True),  # BodyPartExamined wins over the sequence
        ("51185008", "ABD", ("39607008",), True),  # not a defined term: the sequence decides
        ("51185008", "lung", (), True),
        ("51185008", None, (), None),
        ("51185008", "UPPER LIMB", (), None),  # a region name, not a defined term
        ("999999", "CHEST", (), None),  # ordered code not in the table
    ],
)
def test_compatible(ordered, term, regions, expected):
    assert compatible(ordered, term, regions) is expected


def test_every_parent_is_a_region_and_the_graph_has_no_cycle():
    for name, region in REGIONS.items():
        assert set(region.parents) <= set(REGIONS), name
        assert name not in ancestors(name)
