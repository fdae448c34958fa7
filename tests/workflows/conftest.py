"""An app wired to the real authorization server, the real FHIR server and its own database,
with a small library enrolled from ../shared/data/pills."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from service.config import OutboxSettings
from service.evaluation.pills import read_dataset
from service.store import migrate
from service.workflows.pills.enrol import enrol_products
from tests.conftest import SHARED_DATA, api_settings, app_client

# The e2e library is the whole dev set enrolled per the dataset protocol (a realistic library:
# the open-set score needs the look-alikes to be present), and these photos are the queries.
PRODUCT_A, PHOTO_A = "ndc_00093-0311-01", "photo_4.jpg"  # loperamide 2 mg
PRODUCT_B, PHOTO_B = "ndc_00149-0007-05", "photo_4.jpg"  # another product, another look
NOT_IN_LIBRARY_NDC = "00172-3650-70"  # glipizide 10 mg: in the dataset, never enrolled here


def photo(product: str, name: str) -> bytes:
    return (SHARED_DATA / "pills" / product / name).read_bytes()


def two_pills() -> bytes:
    """Two real pill photos side by side on a plain background (two pills in one frame)."""
    a = Image.open(io.BytesIO(photo(PRODUCT_A, PHOTO_A))).convert("RGB")
    a.thumbnail((220, 220))
    canvas = Image.new("RGB", (800, 400), (236, 236, 236))
    canvas.paste(a, (80, 100))
    canvas.paste(a, (480, 100))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def blank() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((480, 640, 3), 210, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Ehr:
    """Seeds and reads the FHIR server as the EHR's own admin would."""

    def __init__(self, fhir_server: Any) -> None:
        self.server = fhir_server
        self.base = fhir_server.base_url

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.base}/{resource['resourceType']}", json=resource,
                       headers=self.server.admin_headers(), timeout=10)  # fmt: skip
        assert r.status_code == 201, r.text
        return dict(r.json())

    def search(self, query: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.base}/{query}", headers=self.server.admin_headers(), timeout=10)
        assert r.status_code == 200, r.text
        return [
            e["resource"]
            for e in r.json().get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        ]

    def patient(self) -> str:
        return (
            "Patient/"
            + self.create({"resourceType": "Patient", "name": [{"family": "Test"}]})["id"]
        )

    def order(self, patient: str, ndc: str, *, status: str = "active", dose: int | None = 1) -> str:
        body: dict[str, Any] = {
            "resourceType": "MedicationRequest", "status": status, "intent": "order",
            "subject": {"reference": patient},
            "medicationCodeableConcept": {
                "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": ndc}]},
        }  # fmt: skip
        if dose is not None:
            body["dosageInstruction"] = [{"doseAndRate": [{"doseQuantity": {"value": dose}}]}]
        return "MedicationRequest/" + self.create(body)["id"]


@pytest.fixture(scope="session")
def ehr(fhir_server: Any) -> Ehr:
    return Ehr(fhir_server)


@pytest.fixture(scope="session")
async def e2e_db(make_database: Any) -> str:
    url: str = make_database("e2e")
    await migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
async def pill_app(
    e2e_db: str, auth_server: Any, fhir_server: Any, api_token: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    settings = api_settings(
        e2e_db, auth_server, tmp_path_factory.mktemp("e2e"),
        fhir=fhir_server.settings_for("verity-rs384", max_retries=1, timeout_s=5,
                                      connect_timeout_s=1),
        outbox=OutboxSettings(poll_interval_s=0.1, backoff_base_s=0.2, backoff_max_s=1.0),
    )  # fmt: skip
    async with app_client(settings, api_token, timeout=120) as client:
        pills = client.app.state.pills
        entries = ((d.product, d.reference_images()) for d in read_dataset(SHARED_DATA / "pills"))
        await enrol_products(pills, client.app.state.db.pool.connection, entries)
        yield client


async def verify(
    client: httpx.AsyncClient, order: str, photos: list[bytes], **form: str
) -> httpx.Response:
    files = [("photo", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)]
    headers = {}
    if "key" in form:
        headers["Idempotency-Key"] = form.pop("key")
    return await client.post("/v1/medication-verifications", files=files,
                             data={"medication_request": order, **form}, headers=headers)  # fmt: skip


def new_key() -> str:
    return uuid.uuid4().hex
