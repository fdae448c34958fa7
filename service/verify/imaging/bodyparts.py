"""Body parts: DICOM BodyPartExamined defined terms <-> SNOMED CT, and which regions contain
which, so that an order's bodySite can be compared with what the DICOM header says.

The terms and codes are those of DICOM PS3.16 Annex L, Table L-1 ("Correspondence of Anatomic
Region Codes and Body Part Examined Defined Terms"), whose codes are the concepts of CID 4031
Common Anatomic Regions (the current SNOMED CT codes as in pydicom's `pydicom.sr` CID 4031
table; a test checks them against it). Where an edition of CID 4031 changed a code (CHEST,
ABDOMEN, PELVIS, HIP, JAW), the earlier code is kept as an alias, since EHRs still send it.
LUNG, BRAIN, LIVER, KIDNEY and ADRENAL are Table L-1 terms outside CID 4031 (CID 4030/4040).
Lower and upper limb are CID 4031 regions without a defined term: an order may name them.

The containment ("the terms inside it") is anatomical and is this module's own: a region's
parents are the regions that wholly or partly contain it (the lung is in the chest; the chest
is in CHESTABDOMEN and NECKCHEST; every region is in WHOLEBODY). The rule is then: an ordered
region and a DICOM region are compatible when they are the same region or one contains the
other, in either direction (an order for the chest accepts LUNG; an order for the brain accepts
HEAD, the image of a whole that includes it); siblings (LUNG vs HEART) and unrelated regions
(HEAD vs ABDOMEN) are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Region:
    codes: tuple[str, ...]  # SNOMED CT: the current CID 4031 code first, then earlier ones
    meaning: str
    parents: tuple[str, ...] = ()  # regions that contain this one (WHOLEBODY is implied)
    defined_term: bool = True  # False: a CID 4031 region with no BodyPartExamined term


def _r(codes: str, meaning: str, *parents: str, defined_term: bool = True) -> Region:
    return Region(tuple(codes.split()), meaning, parents, defined_term)


ROOT = "WHOLEBODY"
REGIONS: dict[str, Region] = {
    "WHOLEBODY": _r("38266002", "Entire body"),
    # trunk and its combinations
    "NECKCHESTABDPELV": _r("416319003", "Neck, Chest, Abdomen and Pelvis"),
    "NECKCHESTABDOMEN": _r("416152001", "Neck, Chest and Abdomen", "NECKCHESTABDPELV"),
    "NECKCHEST": _r("417437006", "Neck and Chest", "NECKCHESTABDOMEN"),
    "CHESTABDPELVIS": _r("416775004", "Chest, Abdomen and Pelvis", "NECKCHESTABDPELV"),
    "CHESTABDOMEN": _r("416550000", "Chest and Abdomen", "NECKCHESTABDOMEN", "CHESTABDPELVIS"),
    "ABDOMENPELVIS": _r("818982008", "Abdomen and Pelvis", "CHESTABDPELVIS"),
    "CHEST": _r("816094009 51185008 43799004", "Chest", "NECKCHEST", "CHESTABDOMEN"),
    "ABDOMEN": _r("818981001 113345001", "Abdomen", "CHESTABDOMEN", "ABDOMENPELVIS"),
    "PELVIS": _r("816092008 12921003", "Pelvis", "ABDOMENPELVIS"),
    # head and neck
    "HEADNECK": _r("774007", "Head and Neck"),
    "HEAD": _r("69536005", "Head", "HEADNECK"),
    "NECK": _r("45048000", "Neck", "HEADNECK", "NECKCHEST"),
    "BRAIN": _r("12738006", "Brain", "HEAD"),
    "SKULL": _r("89546000", "Skull", "HEAD"),
    "IAC": _r("361078006", "Internal Auditory Canal", "SKULL"),
    "MASTOID": _r("59066005", "Mastoid bone", "SKULL"),
    "MAXILLA": _r("70925003", "Maxilla", "SKULL"),
    "OPTICCANAL": _r("55024004", "Optic canal", "SKULL"),
    "SELLA": _r("42575006", "Sella turcica", "SKULL"),
    "ZYGOMA": _r("13881006", "Zygoma", "SKULL"),
    "JAW": _r("661005 91609006", "Jaw region", "HEAD"),
    "TMJ": _r("53620006", "Temporomandibular joint", "HEAD"),
    "ORBIT": _r("363654007", "Orbital structure", "HEAD"),
    "EYE": _r("81745001", "Eye", "ORBIT"),
    "PAROTID": _r("45289007", "Parotid gland", "HEAD"),
    "SUBMANDIBULAR": _r("54019009", "Submandibular gland", "NECK"),
    "LARYNX": _r("4596009", "Larynx", "NECK"),
    "TRACHEA": _r("44567001", "Trachea", "NECK", "CHEST"),
    # chest
    "LUNG": _r("39607008", "Lung", "CHEST"),
    "HEART": _r("80891009", "Heart", "CHEST"),
    "MEDIASTINUM": _r("72410000", "Mediastinum", "CHEST"),
    "BRONCHUS": _r("955009", "Bronchus", "CHEST"),
    "ESOPHAGUS": _r("32849002", "Esophagus", "CHEST"),
    "BREAST": _r("76752008", "Breast", "CHEST"),
    "RIB": _r("113197003", "Rib", "CHEST"),
    "STERNUM": _r("56873002", "Sternum", "CHEST"),
    "SCJOINT": _r("7844006", "Sternoclavicular joint", "CHEST"),
    # abdomen and pelvis
    "LIVER": _r("10200004", "Liver", "ABDOMEN"),
    "PANCREAS": _r("15776009", "Pancreas", "ABDOMEN"),
    "KIDNEY": _r("64033007", "Kidney", "ABDOMEN"),
    "ADRENAL": _r("23451007", "Adrenal gland", "ABDOMEN"),
    "GALLBLADDER": _r("28231008", "Gallbladder", "ABDOMEN"),
    "BILEDUCT": _r("28273000", "Bile duct", "ABDOMEN"),
    "STOMACH": _r("69695003", "Stomach", "ABDOMEN"),
    "SMALLINTESTINE": _r("30315005", "Small intestine", "ABDOMEN"),
    "DUODENUM": _r("38848004", "Duodenum", "SMALLINTESTINE"),
    "JEJUNUM": _r("21306003", "Jejunum", "SMALLINTESTINE"),
    "ILEUM": _r("34516001", "Ileum", "SMALLINTESTINE"),
    "LARGEINTESTINE": _r("14742008", "Large intestine", "ABDOMENPELVIS"),
    "COLON": _r("71854001", "Colon", "LARGEINTESTINE", "ABDOMEN"),
    "RECTUM": _r("34402009", "Rectum", "LARGEINTESTINE", "PELVIS"),
    "UPRURINARYTRACT": _r("431491007", "Upper urinary tract", "ABDOMEN"),
    "URETER": _r("87953007", "Ureter", "ABDOMENPELVIS"),
    "BLADDER": _r("89837001", "Bladder", "PELVIS"),
    "URETHRA": _r("13648007", "Urethra", "PELVIS"),
    "PROSTATE": _r("41216001", "Prostate", "PELVIS"),
    "ILIUM": _r("22356005", "Ilium", "PELVIS"),
    "SIJOINT": _r("39723000", "Sacroiliac joint", "PELVIS"),
    # spine
    "SPINE": _r("421060004", "Spine"),
    "CTSPINE": _r("1217257000", "Cervico-thoracic spine", "SPINE"),
    "TLSPINE": _r("1217256009", "Thoraco-lumbar spine", "SPINE"),
    "LSSPINE": _r("1217253001", "Lumbo-sacral spine", "SPINE"),
    "CSPINE": _r("122494005", "Cervical spine", "CTSPINE"),
    "TSPINE": _r("122495006", "Thoracic spine", "CTSPINE", "TLSPINE"),
    "LSPINE": _r("122496007", "Lumbar spine", "TLSPINE", "LSSPINE"),
    "SSPINE": _r("54735007", "Sacrum", "LSSPINE", "PELVIS"),
    "COCCYX": _r("64688005", "Coccyx", "SPINE", "PELVIS"),
    # limbs
    "EXTREMITY": _r("66019005", "Extremity"),
    "UPPER LIMB": _r("53120007", "Upper limb", "EXTREMITY", defined_term=False),
    "LOWER LIMB": _r("61685007", "Lower limb", "EXTREMITY", defined_term=False),
    "SHOULDER": _r("16982005", "Shoulder", "UPPER LIMB"),
    "ACJOINT": _r("85856004", "Acromioclavicular joint", "SHOULDER"),
    "SCAPULA": _r("79601000", "Scapula", "SHOULDER"),
    "CLAVICLE": _r("51299004", "Clavicle", "SHOULDER"),
    "ARM": _r("40983000", "Upper arm", "UPPER LIMB"),
    "HUMERUS": _r("85050009", "Humerus", "ARM"),
    "ELBOW": _r("16953009", "Elbow joint", "UPPER LIMB"),
    "FOREARM": _r("14975008", "Forearm", "UPPER LIMB"),
    "WRIST": _r("74670003", "Wrist joint", "UPPER LIMB"),
    "HAND": _r("85562004", "Hand", "UPPER LIMB"),
    "FINGER": _r("7569003", "Finger", "HAND"),
    "THUMB": _r("76505004", "Thumb", "HAND"),
    "HIP": _r("29836001 24136001", "Hip", "LOWER LIMB", "PELVIS"),
    "THIGH": _r("68367000", "Thigh", "LOWER LIMB"),
    "FEMUR": _r("71341001", "Femur", "THIGH"),
    "KNEE": _r("72696002", "Knee", "LOWER LIMB"),
    "PATELLA": _r("64234005", "Patella", "KNEE"),
    "LEG": _r("30021000", "Lower leg", "LOWER LIMB"),
    "FIBULA": _r("87342007", "Fibula", "LEG"),
    "ANKLE": _r("70258002", "Ankle joint", "LOWER LIMB"),
    "FOOT": _r("56459004", "Foot", "LOWER LIMB"),
    "CALCANEUS": _r("80144004", "Calcaneus", "FOOT"),
    "SESAMOID": _r("58742003", "Sesamoid bones of foot", "FOOT"),
    "TOE": _r("29707007", "Toe", "FOOT"),
}
_BY_CODE: dict[str, str] = {code: name for name, r in REGIONS.items() for code in r.codes}


def region_for_term(term: str | None) -> str | None:
    """The region of a BodyPartExamined value, when it is a Table L-1 defined term."""
    key = (term or "").strip().upper()
    region = REGIONS.get(key)
    return key if region is not None and region.defined_term else None


def region_for_code(code: str | None) -> str | None:
    """The region of a SNOMED CT code (current or earlier CID 4031 code)."""
    return _BY_CODE.get((code or "").strip())


def snomed_for_term(term: str | None) -> str | None:
    """The current SNOMED CT code for a BodyPartExamined defined term."""
    region = region_for_term(term)
    return REGIONS[region].codes[0] if region else None


@cache
def ancestors(region: str) -> frozenset[str]:
    """Every region that contains this one (WHOLEBODY contains every other region)."""
    found: set[str] = set()
    for parent in REGIONS[region].parents:
        found |= {parent} | ancestors(parent)
    return frozenset(found | ({ROOT} if region != ROOT else set()))


def related(a: str, b: str) -> bool:
    """Same region, or one contains the other."""
    return a == b or a in ancestors(b) or b in ancestors(a)


def compatible(
    ordered_snomed: str, dicom_term: str | None, region_codes: Sequence[str]
) -> bool | None:
    """Whether the DICOM body part fits the ordered one: BodyPartExamined when it is a defined
    term, else any AnatomicRegionSequence code. None: nothing known to compare."""
    ordered = region_for_code(ordered_snomed)
    if ordered is None:
        return None
    term = region_for_term(dicom_term)
    if term is not None:
        return related(ordered, term)
    regions = [r for r in (region_for_code(c) for c in region_codes) if r is not None]
    if not regions:
        return None
    return any(related(ordered, r) for r in regions)
