"""Imaging jobs across real worker processes and refused studies: a `verity worker` killed with
SIGKILL in the middle of a study is finished by another, recorded once and reported once; a
study over the limits and a study with no PACS fail with their own codes, nothing recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service.config import PacsSettings, Settings
from service.demo.series import write_ct_series
from service.store import jobs, migrate
from service.store.pool import create_pool
from service.workflows.imaging.jobs import Imaging, ImagingRequest, run_job, submit
from service.workflows.imaging.sources import PacsSources
from service.workflows.record import Caller
from tests.servers.servers import client_pem_env
from tests.workflows.test_imaging_e2e import Ehr, imaging_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def queue_db(make_database: Any) -> str:
    """A database no app worker polls: the test decides who runs its jobs."""
    url: str = make_database("imgjobs")
    await migrate.upgrade(url)
    return url


# Long enough to kill a worker mid-way: at concurrency 1 a worker checks ~50-60 instances a
# second here, and reports progress about once a second.
SERIES_SIZE = 150


@pytest.fixture
def big_study(tmp_path: Path, orthanc: Any) -> Path:
    """A CT series of SERIES_SIZE instances from real slices, in Orthanc."""
    folder = tmp_path / "series"
    paths = write_ct_series(folder, SERIES_SIZE, seed=11)
    orthanc.stow(paths)
    return folder


def seed_series(ehr: Ehr, folder: Path, pacs_url: str) -> str:
    """The series' own Patient / ServiceRequest / ImagingStudy (written beside it)."""
    import json

    fhir = {p.stem: json.loads(p.read_text()) for p in (folder / "fhir").glob("*.json")}
    patient, order, study = fhir["Patient"], fhir["ServiceRequest"], fhir["ImagingStudy"]
    for r in (patient, order, study):
        r.pop("id", None)
    patient_ref = ehr.post(patient)
    order["subject"] = {"reference": patient_ref}
    order_ref = ehr.post(order)
    study["subject"] = {"reference": patient_ref}
    study["basedOn"] = [{"reference": order_ref}]
    for item in study.get("contained") or []:
        if item.get("resourceType") == "Endpoint":
            item["address"] = pacs_url
    return ehr.post(study)


def worker(db_url: str, fhir_server: Any, orthanc: Any, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": db_url,
        "VERITY_ENVIRONMENT": "test", "VERITY_FHIR__BASE_URL": fhir_server.base_url,
        **client_pem_env(fhir_server.auth.clients["verity-rs384"]),
        "VERITY_PACS__BASE_URL": orthanc.base_url, "VERITY_PACS__CONCURRENCY": "1",
        "VERITY_IMAGING__LEASE_S": "5", "VERITY_IMAGING__POLL_INTERVAL_S": "0.2",
        "VERITY_IMAGING__PATIENT_ID_ISSUERS": '["HOSPITAL.EXAMPLE"]',
        "VERITY_OUTBOX__POLL_INTERVAL_S": "0.2",
    }  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"], cwd=REPO, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def job_state(db_url: str, job_id: str) -> jobs.JobRow:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
        return await jobs.get(c, job_id)


async def wait_job(db_url: str, job_id: str, ok: Any, timeout: float = 120) -> jobs.JobRow:
    deadline = time.monotonic() + timeout
    while not ok(job := await job_state(db_url, job_id)):
        assert time.monotonic() < deadline, f"job {job.state} {job.progress} {job.error}"
        await asyncio.sleep(0.2)
    return job


@pytest.mark.slow
async def test_a_worker_killed_mid_study_is_finished_by_another_and_reported_once(
    queue_db: str, fhir_server: Any, orthanc: Any, big_study: Path, tmp_path: Path
) -> None:
    ehr = Ehr(fhir_server)
    study_ref = seed_series(ehr, big_study, orthanc.base_url)
    pool = create_pool(queue_db, Settings().db)
    await pool.open()
    try:
        job, _ = await submit(pool.connection, ImagingRequest(study_ref, caller=Caller("t")))
    finally:
        await pool.close()
    log = tmp_path / "workers.log"
    first = worker(queue_db, fhir_server, orthanc, log)
    try:
        running = await wait_job(
            queue_db, job.id,
            lambda j: j.state == "running" and j.progress.get("instances_fetched", 0) >= 3,
        )  # fmt: skip
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert running.attempts == 1
    # Killed mid-study: the job had not finished (on a fast machine the pixel pass may be
    # through, but the embedding tier and the recording were not).
    killed = await job_state(queue_db, job.id)
    assert killed.state == "running", "the first worker finished before it was killed"
    async with await psycopg.AsyncConnection.connect(queue_db, autocommit=True) as c:
        cur = await c.execute("SELECT count(*) FROM verification WHERE id = %s", (job.id,))
        assert (await cur.fetchone()) == (0,)
    second = worker(queue_db, fhir_server, orthanc, log)
    try:
        done = await wait_job(queue_db, job.id, lambda j: j.state in ("done", "failed"))
        assert done.state == "done", (done.error, log.read_text()[-2000:])
        assert done.attempts == 2 and done.findings == []
        async with await psycopg.AsyncConnection.connect(queue_db, autocommit=True) as c:
            cur = await c.execute("SELECT count(*) FROM verification WHERE id = %s", (job.id,))
            assert (await cur.fetchone()) == (1,)
            cur = await c.execute(
                "SELECT count(*) FROM image_fingerprint WHERE verification_id = %s", (job.id,)
            )
            assert (await cur.fetchone()) == (SERIES_SIZE,)
        deadline = time.monotonic() + 60
        while not (reports := ehr.search("DiagnosticReport", **{"based-on": done.order_ref})):
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            await asyncio.sleep(0.3)
        assert len(reports) == 1 and len(reports[0]["result"]) == 13  # one Observation per check
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
    assert len(ehr.search("DiagnosticReport", **{"based-on": done.order_ref})) == 1


@pytest.fixture
async def imaging(queue_db: str, fhir_server: Any) -> AsyncIterator[Imaging]:
    from service.fhir.client import create_fhir_client

    settings = Settings(  # type: ignore[call-arg]
        environment="test", database_url=queue_db,
        fhir=fhir_server.settings_for("verity-rs384"), imaging=imaging_settings(),
    )  # fmt: skip
    pool = create_pool(queue_db, settings.db)
    await pool.open()
    fhir = await create_fhir_client(settings.fhir)
    pacs = PacsSources(settings.pacs)
    try:
        yield Imaging(settings, fhir, pacs, pool.connection)
    finally:
        await pacs.aclose()
        await fhir.aclose()
        await pool.close()


async def run_one(imaging: Imaging, study_ref: str) -> jobs.JobRow:
    job, _ = await submit(imaging.connect, ImagingRequest(study_ref))
    async with imaging.connect() as conn:
        await conn.set_autocommit(True)
        (claimed,) = await jobs.claim(conn, limit=1, lease_s=30)
    await run_job(imaging, claimed)
    async with imaging.connect() as conn:
        return await jobs.get(conn, job.id)


async def test_a_study_over_the_instance_limit_fails_with_its_code(
    imaging: Imaging, fhir_server: Any, orthanc: Any, big_study: Path
) -> None:
    limited = imaging.settings.model_copy(
        update={"pacs": PacsSettings(base_url=orthanc.base_url, max_instances=10)}
    )
    small = Imaging(limited, imaging.fhir, PacsSources(limited.pacs), imaging.connect)
    job = await run_one(small, seed_series(Ehr(fhir_server), big_study, orthanc.base_url))
    await small.pacs.aclose()
    assert job.state == "failed" and job.error is not None
    assert job.error["code"] == "VERITY-4405" and job.attempts == 1
    assert job.progress == {}  # refused after the series list, before any instance


async def test_a_study_without_endpoint_and_no_configured_pacs_fails_with_its_code(
    imaging: Imaging, fhir_server: Any
) -> None:
    study_ref = Ehr(fhir_server).seed("dev-016", address=None)
    job = await run_one(imaging, study_ref)
    assert job.state == "failed" and job.error is not None
    assert job.error["code"] == "VERITY-4404" and not job.error["retryable"]
    async with imaging.connect() as conn:
        cur = await conn.execute("SELECT count(*) FROM verification WHERE id = %s", (job.id,))
        assert (await cur.fetchone()) == (0,)


async def test_a_study_over_the_byte_limit_stops_fetching_and_fails_with_its_code(
    imaging: Imaging, fhir_server: Any, orthanc: Any, big_study: Path
) -> None:
    limited = imaging.settings.model_copy(
        update={"pacs": PacsSettings(base_url=orthanc.base_url, max_study_bytes=300_000)}
    )
    small = Imaging(limited, imaging.fhir, PacsSources(limited.pacs), imaging.connect)
    seen_before = len(orthanc.requests_seen())
    job = await run_one(small, seed_series(Ehr(fhir_server), big_study, orthanc.base_url))
    await small.pacs.aclose()
    assert job.state == "failed" and job.error is not None
    assert job.error["code"] == "VERITY-4405"
    fetched = [p for _, p in orthanc.requests_seen()[seen_before:] if "/instances/" in p]
    assert 0 < len(fetched) < SERIES_SIZE  # the remaining instances were never asked for
