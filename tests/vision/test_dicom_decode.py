"""DICOM pixel decoding on the real files: every transfer syntax of the reference set, every
study image, and the ways pixels go wrong (truncated, blank, malformed, over the limits)."""

import copy
import csv

import numpy as np
import pytest
from pydicom.encaps import encapsulate, generate_frames

from service.errors import DicomInvalid, DicomTooLarge
from service.vision.dicom.decode import (
    PixelsUnreadable,
    decode_image,
    read_part10,
    representative_indices,
)
from tests.conftest import SHARED_DATA

DICOM = SHARED_DATA / "dicom"
STUDIES = SHARED_DATA / "studies"


def _index_rows() -> list[dict[str, str]]:
    with (DICOM / "index.csv").open() as f:
        return list(csv.DictReader(f))


def _files_rows() -> list[dict[str, str]]:
    with (STUDIES / "files.csv").open() as f:
        return list(csv.DictReader(f))


def _decode(path, max_frames=3, frame_limit=1000):
    return decode_image(
        read_part10(path.read_bytes()), max_frames=max_frames, frame_limit=frame_limit
    )


def _assert_display(image, rows: int, cols: int, colour: bool) -> None:
    assert image.frames and len(image.frames) == len(image.frame_indices)
    for frame in image.frames:
        assert frame.dtype == np.uint8
        assert frame.shape == ((rows, cols, 3) if colour else (rows, cols))
        assert int(frame.max()) > int(frame.min())  # not a constant image


@pytest.mark.parametrize("row", _index_rows(), ids=lambda r: r["path"])
def test_every_reference_file_decodes(row):
    path = DICOM / row["path"]
    assert path.is_file(), f"missing {path}"  # a missing file fails, never skips
    image = _decode(path)
    colour = row["photometric"].startswith(("YBR", "RGB", "PALETTE"))
    _assert_display(image, int(row["rows"]), int(row["cols"]), colour)
    assert image.total_frames == int(row["frames"])


def test_the_index_lists_every_file():
    listed = {r["path"] for r in _index_rows()}
    on_disk = {str(p.relative_to(DICOM)) for p in DICOM.rglob("*.dcm")}
    assert len(listed) == 29 and listed == on_disk


_DEFECTIVE = {r["path"] for r in _files_rows() if "DEFECT" in r["alteration"]}


@pytest.mark.parametrize("row", _files_rows(), ids=lambda r: r["path"])
def test_every_study_image_decodes_unless_defective(row):
    path = STUDIES / row["path"]
    assert path.is_file(), f"missing {path}"
    if row["path"] in _DEFECTIVE:
        with pytest.raises(PixelsUnreadable) as info:
            _decode(path)
        assert info.value.reason and len(info.value.reason) < 60
    else:
        ds = read_part10(path.read_bytes())
        colour = str(ds.PhotometricInterpretation).startswith(("YBR", "RGB", "PALETTE"))
        _assert_display(_decode(path), int(ds.Rows), int(ds.Columns), colour)


def test_three_defects_are_marked():
    assert len(_DEFECTIVE) == 3


@pytest.mark.parametrize(
    "data",
    [b"", b"not a dicom file" * 40, bytes(range(256)) * 8, b"\0" * 128 + b"DICM" + b"\x02\x00"],
    ids=["empty", "text", "bytes", "cut-meta"],
)
def test_malformed_bytes_are_dicom_invalid(data):
    with pytest.raises(DicomInvalid):
        read_part10(data)


def test_a_dataset_without_preamble_is_read():
    raw = (DICOM / "mr/dcmqa_ts_siemens_brain_2.dcm").read_bytes()
    full = read_part10(raw)
    bare = read_part10(raw[132 + _meta_length(raw) :])  # dataset only: no preamble, no meta
    assert bare.SOPInstanceUID == full.SOPInstanceUID
    assert np.array_equal(_display(bare), _display(full))


def _meta_length(raw: bytes) -> int:
    # (0002,0000) UL group length: 12 bytes of element + the value
    return 12 + int.from_bytes(raw[140:144], "little")


def _display(ds):
    return decode_image(ds, max_frames=1, frame_limit=10).frames[0]


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.99])
@pytest.mark.parametrize(
    "name",
    [
        "mr/wg04_MR2_shoulder_j2k_lossless.dcm",
        "ct_misc/wg04_CT1_j2k_lossy.dcm",
        "mr/dcmqa_ts_siemens_brain_7.dcm",
        "mr/dcmqa_ts_siemens_brain_5.dcm",
    ],
)
def test_a_truncated_frame_is_unreadable(name, fraction):
    """J2K, JPEG-LS and JPEG lossless frames cut short: libjpeg would return grey, not fail."""
    ds = read_part10((DICOM / name).read_bytes())
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: int(len(frame) * fraction)]])
    with pytest.raises(PixelsUnreadable, match="truncated"):
        decode_image(ds, max_frames=1, frame_limit=10)


def test_short_native_pixel_data_and_no_pixel_data_are_unreadable():
    ds = read_part10((DICOM / "ct_misc/pydicom_CT_small_explicitLE.dcm").read_bytes())
    short = copy.deepcopy(ds)
    short.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    with pytest.raises(PixelsUnreadable, match="short native Pixel Data"):
        decode_image(short, max_frames=1, frame_limit=10)
    del ds.PixelData
    with pytest.raises(PixelsUnreadable, match="no Pixel Data"):
        decode_image(ds, max_frames=1, frame_limit=10)


def test_a_constant_image_is_unreadable():
    ds = read_part10((DICOM / "mr/pydicom_MR_small_explicitLE.dcm").read_bytes())
    ds.PixelData = np.full((64, 64), 700, dtype="<i2").tobytes()
    with pytest.raises(PixelsUnreadable, match="constant image"):
        decode_image(ds, max_frames=1, frame_limit=10)


def test_monochrome1_is_inverted_so_air_is_dark():
    """RG1 chest CR (MONOCHROME1): the air-filled lungs show darker than the mediastinum."""
    ds = read_part10((DICOM / "chest_xray/wg04_RG1_cr_chest_j2k_lossy.dcm").read_bytes())
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    grey = decode_image(ds, max_frames=1, frame_limit=10).frames[0].astype(float)
    h, w = grey.shape
    band = slice(int(h * 0.35), int(h * 0.55))
    lungs = (
        grey[band, int(w * 0.2) : int(w * 0.35)].mean()
        + grey[band, int(w * 0.65) : int(w * 0.8)].mean()
    ) / 2
    mediastinum = grey[band, int(w * 0.45) : int(w * 0.55)].mean()
    assert lungs + 30 < mediastinum
    as_mono2 = copy.deepcopy(ds)
    as_mono2.PhotometricInterpretation = "MONOCHROME2"
    flipped = decode_image(as_mono2, max_frames=1, frame_limit=10).frames[0].astype(int)
    assert np.abs(flipped + grey - 255).max() <= 1


def test_representative_frames_are_evenly_spaced():
    image = _decode(DICOM / "multiframe/pydicom_us_30f_jpeg_baseline.dcm", max_frames=3)
    assert image.frame_indices == (5, 15, 25) and image.total_frames == 30
    assert len(image.frames) == 3 and image.frames[0].shape == (240, 320, 3)
    assert not np.array_equal(image.frames[0], image.frames[2])  # really different frames
    assert representative_indices(10, 1) == (5,)
    assert representative_indices(2, 5) == (0, 1)
    assert _decode(
        DICOM / "multiframe/pydicom_emri_small_10f_rle.dcm", max_frames=10
    ).frame_indices == tuple(range(10))


def test_frames_over_the_limit_are_too_large():
    with pytest.raises(DicomTooLarge):
        _decode(DICOM / "multiframe/pydicom_us_30f_jpeg_baseline.dcm", frame_limit=29)
    ds = read_part10((DICOM / "mr/pydicom_MR_small_explicitLE.dcm").read_bytes())
    with pytest.raises(DicomTooLarge):
        decode_image(ds, max_frames=1, frame_limit=10, max_pixels=64 * 63)


def test_pixel_padding_is_black_and_outside_the_window():
    """ct3slice: the area outside the reconstruction circle is Pixel Padding Value -2000."""
    ds = read_part10((DICOM / "ct_series/ct3slice_01.dcm").read_bytes())
    assert ds.PixelPaddingValue == -2000
    grey = decode_image(ds, max_frames=1, frame_limit=10).frames[0]
    padded = ds.pixel_array == -2000
    assert padded.any() and (grey[padded] == 0).all()
    del ds.WindowCenter, ds.WindowWidth  # robust window: padding must not set it
    robust = decode_image(ds, max_frames=1, frame_limit=10).frames[0]
    assert (robust[padded] == 0).all() and robust[~padded].std() > 20


def test_window_in_the_functional_groups_is_used():
    """Enhanced CT: rescale and window live only in the shared functional groups."""
    ds = read_part10((DICOM / "multiframe/nema_enhanced_ct_2f.dcm").read_bytes())
    first = decode_image(ds, max_frames=1, frame_limit=10).frames[0]
    ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0].WindowWidth = 2000
    wide = decode_image(ds, max_frames=1, frame_limit=10).frames[0]
    assert not np.array_equal(first, wide)
