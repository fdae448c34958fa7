"""The labelled pill dataset format (`labels.csv` + `<product_id>/ref_N.jpg|photo_N.jpg`, see
../shared/data/README.md): products to import and which images enrol them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from service.errors import DatasetInvalid, FileUnreadable
from service.store.library import Product
from service.verify.catalog import parse_label_ingredients

_FORMS = ("tablet", "capsule")


@dataclass(frozen=True)
class DatasetProduct:
    product: Product
    references: list[Path]  # images that enrol it (refs, else photo_1 when it has 2+ photos)
    queries: list[Path]  # the other photos

    def reference_images(self) -> Iterator[tuple[str, bytes]]:
        """(file name, bytes) of each enrolment image, read when asked for."""
        for path in self.references:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise FileUnreadable(f"{path}: {exc.strerror or exc}") from None
            yield path.name, data


def _photo_number(path: Path) -> int:
    return int(path.stem.split("_")[1]) if path.stem.split("_")[-1].isdigit() else 0


def product_from_label(row: dict[str, str]) -> Product:
    """One labels.csv row as a library product."""
    name, strength = row.get("name", "") or "", row.get("strength", "") or ""
    shape_words = (row.get("shape") or "").lower().split()
    form = shape_words[0] if shape_words and shape_words[0] in _FORMS else None
    imprint = (row.get("imprint") or "").strip() or None
    return Product(
        id=row["product_id"],
        name=name or None,
        ndcs=[n for n in [(row.get("ndc") or "").strip()] if n],
        rxcui=(row.get("rxcui") or "").strip() or None,
        ingredients=parse_label_ingredients(name, strength),
        dose_form=form,
        imprint=imprint,
        imprint_source="label" if imprint else None,
        colors=[c for c in (row.get("color") or "").split(";") if c],
        shape=form,
    )


def read_dataset(directory: Path) -> list[DatasetProduct]:
    """Products in labels.csv order, with enrolment and query images per the protocol."""
    labels = directory / "labels.csv"
    if not directory.is_dir():
        raise DatasetInvalid(f"{directory} is not a folder")
    if not labels.is_file():
        raise DatasetInvalid(f"{directory} has no labels.csv")
    try:
        text = labels.read_text(encoding="utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError:
        raise DatasetInvalid(f"{labels} is not UTF-8 text") from None
    except OSError as exc:
        raise FileUnreadable(f"{labels}: {exc.strerror or exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if "product_id" not in (reader.fieldnames or []):
        raise DatasetInvalid(f"{labels} has no product_id column")
    out = []
    for row in reader:
        if not (row.get("product_id") or "").strip():
            raise DatasetInvalid(f"{labels} line {reader.line_num} has no product_id")
        folder = directory / row["product_id"]
        refs = sorted(folder.glob("ref_*.jpg"), key=_photo_number)
        photos = sorted(folder.glob("photo_*.jpg"), key=_photo_number)
        if refs:
            enrol, queries = refs, photos
        elif len(photos) >= 2:
            enrol, queries = photos[:1], photos[1:]
        else:
            enrol, queries = [], photos
        out.append(DatasetProduct(product_from_label(row), enrol, queries))
    return out
