"""The duplicate fingerprint on real images: the same pixels re-encoded, re-windowed, resized
or slightly cropped stay within ImagingSettings.duplicate_max_distance; different images
(also of the same body part, from other patients) stay far outside it."""

import copy
import csv
import itertools

import cv2
import numpy as np
import pytest
from pydicom.uid import JPEG2000, RLELossless

from service.config import ImagingSettings
from service.vision.dicom.decode import decode_image, read_part10
from service.vision.dicom.fingerprint import FINGERPRINT_BITS, fingerprint, hamming
from tests.conftest import SHARED_DATA

DICOM = SHARED_DATA / "dicom"
STUDIES = SHARED_DATA / "studies"
LIMIT = ImagingSettings().duplicate_max_distance
# Different patients' images must sit at least this far beyond the limit (headroom for an
# archive far larger than the dev set).
MARGIN = 32


def _ds(name):
    return read_part10((DICOM / name).read_bytes())


def _display(ds, index=0):
    return decode_image(ds, max_frames=1, frame_limit=1000).frames[index]


def _fp_file(path):
    return [
        fingerprint(f)
        for f in decode_image(read_part10(path.read_bytes()), max_frames=3, frame_limit=1000).frames
    ]


def test_fingerprint_text_form():
    fp = fingerprint(_display(_ds("mr/pydicom_MR_small_explicitLE.dcm")))
    assert len(fp) == FINGERPRINT_BITS == 256 and set(fp) <= {"0", "1"}
    assert 64 < fp.count("1") < 192
    assert hamming(fp, fp) == 0 and hamming("0101", "0110") == 2
    with pytest.raises(ValueError):
        hamming("01", "011")


SOURCES = [
    "chest_xray/nih_cxr14_dx_implicitLE.dcm",
    "ct_misc/tcia_lctsc_ct_lung_explicitLE.dcm",
    "ct_series/ct3slice_01.dcm",
    "mr/dcmqa_ts_siemens_brain_1.dcm",
    "mr/wg04_MR2_shoulder_j2k_lossless.dcm",
    "other/wg04_RG3_cr_extremity_j2k_lossless.dcm",
]


@pytest.mark.parametrize("name", SOURCES)
def test_reencoding_lossy_jpeg2000_and_rle(name):
    ds = _ds(name)
    base = fingerprint(_display(ds))
    lossy = copy.deepcopy(ds)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        lossy.decompress()
    lossy.compress(JPEG2000, encoding_plugin="pylibjpeg", j2k_cr=[20])
    assert hamming(base, fingerprint(_display(lossy))) <= LIMIT
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        rle = copy.deepcopy(ds)
        rle.compress(RLELossless)
        assert hamming(base, fingerprint(_display(rle))) == 0
    ok, jpeg = cv2.imencode(".jpg", _display(ds), [cv2.IMWRITE_JPEG_QUALITY, 40])
    assert ok and hamming(base, fingerprint(cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED))) <= LIMIT


def _window_in_force(ds):
    if "WindowCenter" in ds:

        def first(v):
            return float(v[0]) if hasattr(v, "__len__") else float(v)

        return first(ds.WindowCenter), first(ds.WindowWidth)
    values = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    lo, hi = np.percentile(values, [0.5, 99.5])
    return (lo + hi) / 2, hi - lo


@pytest.mark.parametrize("name", SOURCES)
def test_rewindowing_and_bit_depth(name):
    ds = _ds(name)
    base = fingerprint(_display(ds))
    shown = _display(ds).astype(np.float32)
    # another window centre/width on the display values, and a gamma: monotonic changes
    rewindowed = np.clip(shown * 1.3 - 30, 0, 255).astype(np.uint8)
    gamma = (255 * (shown / 255) ** 0.7).astype(np.uint8)
    assert hamming(base, fingerprint(rewindowed)) <= LIMIT
    assert hamming(base, fingerprint(gamma)) <= LIMIT
    # another window in the header: 1.5x as wide, centre moved by a tenth of the width
    centre, width = _window_in_force(ds)
    windowed = copy.deepcopy(ds)
    windowed.WindowCenter, windowed.WindowWidth = centre + 0.1 * width, 1.5 * width
    assert hamming(base, fingerprint(_display(windowed))) <= LIMIT
    # fewer bits: the display values quantised to 6 bits
    assert hamming(base, fingerprint((shown // 4 * 4).astype(np.uint8))) <= LIMIT


@pytest.mark.parametrize("name", SOURCES)
def test_resizing_and_small_crops(name):
    shown = _display(_ds(name))
    base = fingerprint(shown)
    h, w = shown.shape[:2]
    for scale in (0.5, 0.25):
        small = cv2.resize(
            shown, (max(16, int(w * scale)), max(16, int(h * scale))), interpolation=cv2.INTER_AREA
        )
        assert hamming(base, fingerprint(small)) <= LIMIT, scale
    crop = shown[int(h * 0.01) : h - int(h * 0.01), int(w * 0.01) : w - int(w * 0.01)]
    assert hamming(base, fingerprint(crop)) <= LIMIT
    assert hamming(base, fingerprint(shown[int(h * 0.02) :, :])) <= LIMIT


def _studies():
    with (STUDIES / "files.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (STUDIES / "cases.csv").open() as f:
        duplicates = {r["case_id"] for r in csv.DictReader(f) if "DUPLICATE_IMAGE" in r["expected"]}
    sources = {r["path"]: r["source"] for r in rows}
    defective = {r["path"] for r in rows if "DEFECT" in r["alteration"]}
    return sources, duplicates, defective


def test_dev_duplicates_are_near_and_every_other_archive_pair_is_far():
    """The measurement behind duplicate_max_distance: each DUPLICATE_IMAGE case image against
    its archive source, versus every other (archive image, case image) pair."""
    sources, duplicates, defective = _studies()
    archive = {p: _fp_file(STUDIES / p) for p in sources if p.startswith("archive/")}
    cases = {
        p: _fp_file(STUDIES / p)
        for p in sources
        if not p.startswith("archive/") and p not in defective
    }
    near, far = [], []
    for (c, cfps), (a, afps) in itertools.product(cases.items(), archive.items()):
        distance = min(hamming(x, y) for x in cfps for y in afps)
        same_image = sources[c] == sources[a]
        (near if same_image else far).append(distance)
        assert same_image == (c.split("/")[0] in duplicates and same_image)
    assert len(near) == len(duplicates) == 3
    assert max(near) <= LIMIT
    assert min(far) >= LIMIT + MARGIN, (max(near), min(far))


def test_two_different_chest_radiographs_do_not_collide():
    dx = fingerprint(_display(_ds("chest_xray/nih_cxr14_dx_implicitLE.dcm")))
    cr = fingerprint(_display(_ds("chest_xray/wg04_RG1_cr_chest_j2k_lossy.dcm")))
    assert hamming(dx, cr) >= LIMIT + MARGIN
