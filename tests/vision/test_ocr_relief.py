"""Imprint OCR on real photos: debossed imprints need the relief pass, printed ones do not."""

from __future__ import annotations

from pathlib import Path

from service.models.ocr import read_imprint, relief
from service.vision.pills.decode import decode_image
from service.vision.pills.descriptors import ocr_band, upright_crop
from service.vision.pills.segment import find_pills


def _band(engine, path: Path):  # type: ignore[no-untyped-def]
    rgb = decode_image(path.read_bytes(), engine.limits)
    region = find_pills(rgb)[0]
    return ocr_band(*upright_crop(rgb, region.mask, region.contour))


def test_debossed_imprint_is_read_only_from_the_relief(pills_dir: Path, engine) -> None:  # type: ignore[no-untyped-def]
    """White round "CIP 250", debossed (no ink): unreadable as photographed, read in relief."""
    band = _band(engine, pills_dir / "ndc_60505-1308-01" / "photo_5.jpg")
    ocr = engine.registry.get("ocr").runtime
    side = engine.registry.settings
    assert read_imprint(ocr, band, side.ocr_side_px).text == ""
    assert (
        read_imprint(
            ocr, relief(band), side.ocr_relief_side_px, max_side_px=side.ocr_max_side_px
        ).text
        == "CIP 250"
    )
    assert engine._ocr(band).text == "CIP 250"  # the engine falls back to the relief pass


def test_printed_imprint_is_read_on_the_first_pass(pills_dir: Path, engine) -> None:  # type: ignore[no-untyped-def]
    band = _band(engine, pills_dir / "ndc_00093-3147-01" / "photo_2.jpg")
    ocr = engine.registry.get("ocr").runtime
    assert "3147" in read_imprint(ocr, band, engine.registry.settings.ocr_side_px).text
