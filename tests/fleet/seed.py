"""What a fleet run verifies: a small pill library, orders on the FHIR server, studies in the
PACS, and the requests clients send (each a pill photo against an order, or a study)."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import SHARED_DATA

PILLS = SHARED_DATA / "pills"
STUDIES = SHARED_DATA / "studies"
# Small studies (1, 1 and 10 instances): a clean NM, a clean enhanced CT, a mixed-patient MR.
IMAGING_CASES = ("dev-016", "dev-005", "dev-011")


@dataclass(frozen=True)
class Request:
    """One verification a client may send (a fresh Idempotency-Key each time)."""

    kind: str  # "pill" or "imaging"
    ref: str  # MedicationRequest/... or ImagingStudy/...
    photo: bytes = b""


def library_subset(dst: Path, products: int, seed: int = 7) -> list[dict[str, str]]:
    """A dataset folder of `products` products with references (symlinks to the shared data,
    never copies); returns their labels rows."""
    with (PILLS / "labels.csv").open(encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if int(r["n_ref"] or 0) > 0 and r["ndc"]]
    chosen = random.Random(seed).sample(rows, min(products, len(rows)))
    dst.mkdir(parents=True, exist_ok=True)
    with (dst / "labels.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(chosen)
    for row in chosen:
        (dst / row["product_id"]).symlink_to(PILLS / row["product_id"])
    return chosen


class Ehr:
    """The EHR's admin, listing what Verity wrote (seeding reuses tests/workflows' helpers)."""

    def __init__(self, fhir_server: Any) -> None:
        self.server = fhir_server

    def all_of(self, resource_type: str) -> list[dict[str, Any]]:
        """Every resource of a type on the server, following the paging links."""
        found: list[dict[str, Any]] = []
        url: str | None = f"{self.server.base_url}/{resource_type}?_count=200"
        while url:
            r = httpx.get(url, headers=self.server.admin_headers(), timeout=60)
            r.raise_for_status()
            bundle = r.json()
            found += [e["resource"] for e in bundle.get("entry") or []]
            url = next((x["url"] for x in bundle.get("link", []) if x["relation"] == "next"), None)
        return found


def pill_requests(
    fhir_server: Any, products: list[dict[str, str]], seed: int = 11
) -> list[Request]:
    """For each product an order, then requests pairing each order with a photo of the same
    product (mostly no write-back) or of another one (a DetectedIssue)."""
    from tests.workflows.conftest import Ehr as Orders

    rng = random.Random(seed)
    ehr = Orders(fhir_server)
    orders = {row["product_id"]: ehr.order(ehr.patient(), row["ndc"]) for row in products}
    out = []
    ids = list(orders)
    for pid in ids:
        photos = sorted((PILLS / pid).glob("photo_*.jpg"))[:2]
        for photo in photos:
            out.append(Request("pill", orders[pid], photo.read_bytes()))
            other = rng.choice([i for i in ids if i != pid])
            out.append(Request("pill", orders[other], photo.read_bytes()))
    return out


def imaging_requests(fhir_server: Any, orthanc: Any) -> list[Request]:
    """The imaging cases STOWed into Orthanc and described on the FHIR server."""
    from tests.workflows.test_imaging_e2e import Ehr as Studies

    out = []
    for case in IMAGING_CASES:
        orthanc.stow(sorted((STUDIES / case / "dicom").glob("*.dcm")))
        out.append(Request("imaging", Studies(fhir_server).seed(case, address=orthanc.base_url)))
    return out
