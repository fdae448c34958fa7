"""Imaging verification end to end against the real components: studies STOWed into Orthanc
(DICOMweb), their Patient / ServiceRequest / ImagingStudy on the FHIR server, a verification
through the API with real tokens, run by the app's own worker, the report found on the FHIR
server by the auditors' searches, exactly once despite client retries."""

from __future__ import annotations

import asyncio
import csv
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.config import ImagingSettings, OutboxSettings, PacsSettings
from service.evaluation.studies import read_case
from service.store import migrate
from service.workflows.imaging.check import enrol_study
from service.workflows.imaging.sources import folder_source
from tests.conftest import SHARED_DATA, api_settings, app_client

STUDIES = SHARED_DATA / "studies"
with (STUDIES / "cases.csv").open(encoding="utf-8") as _f:
    EXPECTED = {r["case_id"]: set(r["expected"].split()) for r in csv.DictReader(_f)}


def imaging_settings(**kw: Any) -> ImagingSettings:
    return ImagingSettings(  # type: ignore[call-arg]
        poll_interval_s=0.1, backoff_base_s=0.3, backoff_max_s=1.0, lease_s=30,
        patient_id_issuers=["HOSPITAL.EXAMPLE"], **kw,
    )  # fmt: skip


class Ehr:
    """Seeds and searches the FHIR server as the EHR's admin would."""

    def __init__(self, fhir_server: Any) -> None:
        self.server = fhir_server

    def post(self, resource: dict[str, Any]) -> str:
        r = httpx.post(f"{self.server.base_url}/{resource['resourceType']}", json=resource,
                       headers=self.server.admin_headers(), timeout=10)  # fmt: skip
        assert r.status_code == 201, r.text
        return f"{resource['resourceType']}/{r.json()['id']}"

    def search(self, path: str, **params: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.server.base_url}/{path}", params={**params, "_count": "200"},
                      headers=self.server.admin_headers(), timeout=10)  # fmt: skip
        r.raise_for_status()
        return [e["resource"] for e in r.json().get("entry") or []]

    def seed(self, case: str, *, address: str | None, study_uid: str | None = None) -> str:
        """The case's three resources on the server (references to server ids); its contained
        Endpoint names `address` (None: no endpoint at all)."""
        folder = STUDIES / case / "fhir"
        patient, order, study = (
            json.loads((folder / f"{t}.json").read_text())
            for t in ("Patient", "ServiceRequest", "ImagingStudy")
        )
        for r in (patient, order, study):
            r.pop("id")
        patient_ref = self.post(patient)
        order["subject"] = {"reference": patient_ref}
        order_ref = self.post(order)
        study["subject"] = {"reference": patient_ref}
        study["basedOn"] = [{"reference": order_ref}]
        if address is None:
            study.pop("endpoint", None)
            study.pop("contained", None)
        else:
            study["contained"][0]["address"] = address
        if study_uid is not None:
            for ident in study["identifier"]:
                if ident.get("system") == "urn:dicom:uid":
                    ident["value"] = f"urn:oid:{study_uid}"
        return self.post(study)


@pytest.fixture(scope="session")
def ehr(fhir_server: Any) -> Ehr:
    return Ehr(fhir_server)


@pytest.fixture(scope="session")
def pacs(orthanc: Any) -> Any:
    """Orthanc holding the cases these tests verify (STOW-RS), once per session. Each study
    checked becomes history: the cases share no source image (dev-026 and dev-041 would)."""
    for case in ("dev-026", "dev-019", "dev-011", "dev-016"):
        orthanc.stow(sorted((STUDIES / case / "dicom").glob("*.dcm")))
    return orthanc


@pytest.fixture(scope="session")
async def imaging_app(
    make_database: Any, auth_server: Any, fhir_server: Any, pacs: Any, api_token: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    url: str = make_database("imaging")
    await migrate.upgrade(url)
    settings = api_settings(
        url, auth_server, tmp_path_factory.mktemp("imaging"),
        fhir=fhir_server.settings_for("verity-rs384", max_retries=1, timeout_s=5,
                                      connect_timeout_s=1),
        outbox=OutboxSettings(poll_interval_s=0.1, backoff_base_s=0.2, backoff_max_s=1.0),
        pacs=PacsSettings(base_url=pacs.base_url, max_retries=1, backoff_base_s=0.05,
                          timeout_s=5, connect_timeout_s=1),
        imaging=imaging_settings(),
    )  # fmt: skip
    async with app_client(settings, api_token, timeout=120) as client:
        # The PACS history: the archive study whose image dev-019 re-uses (another patient).
        archive = STUDIES / "archive" / "dev-a01"
        await enrol_study(
            settings, await read_case(archive), folder_source(archive / "dicom", settings.pacs),
            client.app.state.db.pool.connection,
        )  # fmt: skip
        yield client


async def submit(
    client: httpx.AsyncClient, study_ref: str, key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(
        "/v1/imaging-verifications", json={"imaging_study": study_ref}, headers=headers
    )


async def wait_for(client: httpx.AsyncClient, location: str, states: set[str],
                   timeout: float = 90) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        job = (await client.get(location)).json()
        if job["state"] in states:
            return dict(job)
        assert time.monotonic() < deadline, f"job still {job['state']}: {job}"
        await asyncio.sleep(0.2)


async def wait_until(client: httpx.AsyncClient, found: Any, timeout: float = 120) -> Any:
    """Poll the FHIR server until `found()` is truthy; on time-out, say what the outbox holds."""
    deadline = time.monotonic() + timeout
    while not (result := found()):
        if time.monotonic() > deadline:
            from service.writeback.relay import outbox_status

            state = await outbox_status(client.app.state.db.pool)  # type: ignore[attr-defined]
            raise AssertionError(f"not on the FHIR server in time; outbox: {state}")
        await asyncio.sleep(0.3)
    return result


# a slice gap and a missing instance; another patient's radiograph; a series of two patients
# (which Orthanc splits in two: read instance by instance)
@pytest.mark.parametrize("case", ["dev-026", "dev-019", "dev-011"])
async def test_a_study_is_verified_end_to_end_and_reported_once(
    imaging_app: httpx.AsyncClient, ehr: Ehr, pacs: Any, case: str
) -> None:
    study_ref = ehr.seed(case, address=pacs.base_url)
    key = uuid.uuid4().hex
    first = await submit(imaging_app, study_ref, key)
    assert first.status_code == 202, first.text
    assert first.headers["Location"] == f"/v1/imaging-verifications/{first.json()['id']}"
    again = await submit(imaging_app, study_ref, key)  # a client retry
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]

    job = await wait_for(imaging_app, first.headers["Location"], {"done", "failed"})
    assert job["state"] == "done", job
    assert set(job["findings"]) == EXPECTED[case]
    progress = job["progress"]
    assert progress["instances_found"] == progress["instances_checked"] > 0
    result = job["result"]
    assert result["study_ref"] == study_ref and result["fhir"]["status"] == "queued"
    checks = result["checks"]
    assert {c["code"] for c in checks if c["outcome"] == "failed"} == EXPECTED[case]

    order_ref = job["order"]
    reports = await wait_until(
        imaging_app, lambda: ehr.search("DiagnosticReport", **{"based-on": order_ref})
    )
    assert len(reports) == 1
    report = reports[0]
    assert report["status"] == "preliminary"
    assert len(report["result"]) == len(checks)
    assert len(ehr.search("DiagnosticReport", patient=job["patient"])) == 1
    # A large write-back arrives in parts (writeback/parts.py): the DetectedIssues and the
    # Provenance may follow the report by a moment.
    issues = await wait_until(
        imaging_app,
        lambda: (found := ehr.search("DetectedIssue", implicated=study_ref))
        and len(found) >= len(EXPECTED[case]) and found,
    )  # fmt: skip
    assert {i["identifier"][0]["value"] for i in issues} and len(issues) == len(EXPECTED[case])
    provenance = await wait_until(
        imaging_app, lambda: ehr.search("Provenance", target=f"DiagnosticReport/{report['id']}")
    )
    assert len(provenance) == 1

    listed = await imaging_app.get("/v1/imaging-verifications", params={"study": study_ref})
    assert [j["id"] for j in listed.json()["items"]] == [job["id"]]
    # The relay and the worker keep running: still one report a moment later.
    await asyncio.sleep(1.0)
    assert len(ehr.search("DiagnosticReport", **{"based-on": order_ref})) == 1


async def test_an_unknown_study_fails_with_its_code_and_is_not_retried(
    imaging_app: httpx.AsyncClient, ehr: Ehr, pacs: Any
) -> None:
    study_ref = ehr.seed("dev-016", address=pacs.base_url, study_uid="2.25.1234567890")
    r = await submit(imaging_app, study_ref)
    job = await wait_for(imaging_app, r.headers["Location"], {"done", "failed"})
    assert job["state"] == "failed" and job["attempts"] == 1
    assert job["error"]["code"] == "VERITY-4402" and job["error"]["retryable"] is False


async def test_an_endpoint_outside_the_allow_list_is_refused_and_never_contacted(
    imaging_app: httpx.AsyncClient, ehr: Ehr, pacs: Any
) -> None:
    # The same Orthanc under another name: not what the hospital configured.
    elsewhere = pacs.base_url.replace("127.0.0.1", "localhost")
    seen_before = len(pacs.requests_seen())
    study_ref = ehr.seed("dev-016", address=elsewhere)
    r = await submit(imaging_app, study_ref)
    job = await wait_for(imaging_app, r.headers["Location"], {"done", "failed"})
    assert job["state"] == "failed" and job["error"]["code"] == "VERITY-4403"
    assert len(pacs.requests_seen()) == seen_before  # Orthanc's own log: no request arrived


async def test_the_pacs_down_during_a_job_is_waited_for_and_nothing_is_lost(
    imaging_app: httpx.AsyncClient, ehr: Ehr, pacs: Any
) -> None:
    study_ref = ehr.seed("dev-016", address=pacs.base_url)
    pacs.stop()
    try:
        r = await submit(imaging_app, study_ref)
        waiting = await wait_for(imaging_app, r.headers["Location"], {"queued", "failed", "done"},
                                 timeout=30)  # fmt: skip
        deadline = time.monotonic() + 30
        while waiting["error"] is None:  # queued again after its first attempt
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
            waiting = (await imaging_app.get(r.headers["Location"])).json()
        assert waiting["state"] in ("queued", "running")
        assert waiting["error"]["code"] == "VERITY-5023" and waiting["error"]["retryable"]
    finally:
        pacs.start()
    job = await wait_for(imaging_app, r.headers["Location"], {"done", "failed"})
    assert job["state"] == "done" and job["attempts"] >= 2
    assert set(job["findings"]) == EXPECTED["dev-016"] == set()
