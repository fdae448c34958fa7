"""A fleet under load and faults: three `verity serve` replicas behind haproxy, two `verity
worker` processes, PostgreSQL over TCP, the real authorization, FHIR and DICOMweb servers.
Four clients send pill and imaging verifications; one API replica and one worker are killed
with SIGKILL and restarted, and the FHIR server is stopped for a while and started again.
Afterwards every count is compared with what the clients were told.

Bounded for CI (2 cores): VERITY_FLEET_RUN_S (default 70 s of load) and
VERITY_FLEET_OUTAGE_S (default 12 s of FHIR outage instead of the issue's 30 s, which fits
the bound only on a quiet machine) can be raised for a longer local run, e.g. 180 and 30.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import checks
from tests.fleet.fleet import Fleet, start_fhir
from tests.fleet.load import Tally, client_task
from tests.fleet.seed import Ehr, imaging_requests, library_subset, pill_requests
from tests.servers.orthanc import start_orthanc
from tests.servers.servers import start_auth_server

RUN_S = float(os.environ.get("VERITY_FLEET_RUN_S", "70"))
OUTAGE_S = float(os.environ.get("VERITY_FLEET_OUTAGE_S", "12"))
CLIENTS = 4
DRAIN_TIMEOUT_S = 120.0

# About 100 s on a quiet 2-core machine; the FHIR server's restart (Medplum indexes every R4
# definition) and five model loads stretch several-fold when other jobs share the cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass
class World:
    work: Path
    auth: Any
    fhir: Any
    orthanc: Any
    fleet: Fleet
    ehr: Ehr


@pytest.fixture
def world() -> Iterator[World]:
    """Servers of its own (the FHIR server keeps its data across a stop), torn down after."""
    work = Path(tempfile.mkdtemp(prefix="verity-fleet-"))
    auth = start_auth_server(work)
    fhir = orthanc = fleet = None
    try:
        fhir = start_fhir(auth, work)
        orthanc = start_orthanc(work / "orthanc")
        fleet = Fleet(work / "fleet", auth, fhir.base_url, orthanc.base_url)
        yield World(work, auth, fhir, orthanc, fleet, Ehr(fhir))
    finally:
        for part in (fleet, orthanc, fhir):
            if part is not None:
                part.stop()
        auth.server.stop()
        shutil.rmtree(work, ignore_errors=True)


async def faults(w: World, run_s: float, outage_s: float) -> list[tuple[float, str]]:
    """Kill an API replica, then a worker (each restarted at once), then stop the FHIR server
    for `outage_s` and start it again on the same port; return what happened when."""
    t0 = time.monotonic()
    done: list[tuple[float, str]] = []

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, t0 + fraction * run_s - time.monotonic()))

    await at(0.15)
    w.fleet.restart(w.fleet.apis[0])
    done.append((time.monotonic() - t0, "SIGKILL api0, restarted"))
    await at(0.3)
    w.fleet.restart(w.fleet.workers[0])
    done.append((time.monotonic() - t0, "SIGKILL worker0, restarted"))
    await at(0.45)
    await asyncio.to_thread(w.fhir.stop)
    done.append((time.monotonic() - t0, "FHIR server stopped"))
    await asyncio.sleep(outage_s)
    await asyncio.to_thread(w.fhir.start)
    done.append((time.monotonic() - t0, "FHIR server started"))
    await asyncio.to_thread(w.fleet.apis[0].wait_ready)
    await asyncio.to_thread(w.fleet.workers[0].wait_ready)
    await at(1.0)
    return done


async def test_fleet_survives_killed_processes_and_a_fhir_outage(world: World) -> None:
    w = world
    products = library_subset(w.work / "library", 8)
    assert "imported 8 products" in w.fleet.prepare(w.work / "library")
    requests = pill_requests(w.fhir, products) + imaging_requests(w.fhir, w.orthanc)
    base_url = w.fleet.start(apis=3, workers=2)
    token = w.auth.mint_token("api-caller", resource=w.auth.api_audience)["access_token"]

    tally, stop = Tally(), asyncio.Event()
    clients = [
        asyncio.create_task(client_task(base_url, token, requests, stop, tally, seed=i))
        for i in range(CLIENTS)
    ]
    timeline = await faults(w, RUN_S, OUTAGE_S)
    stop.set()
    await asyncio.gather(*clients)
    url = w.fleet.pg.url()
    queues = await asyncio.to_thread(checks.wait_drained, url, DRAIN_TIMEOUT_S)
    assert w.fleet.lb is not None
    lb = w.fleet.lb.events()
    print("timeline:", timeline, "statuses:", dict(tally.statuses), "retryable 5xx:",
          dict(tally.retryable_5xx), "queues:", queues, "balancer:", lb)  # fmt: skip

    # The faults happened, and clients saw them only as documented retryable answers.
    assert [a.starts for a in w.fleet.apis] == [2, 1, 1]
    assert [v.starts for v in w.fleet.workers] == [2, 1]
    assert lb["server DOWN"] >= 1 and lb["server UP"] >= 1, lb  # it saw api0 go and come back
    assert tally.retryable_5xx, "nobody noticed the FHIR outage: the fault was not exercised"
    assert tally.unexpected == [], tally.unexpected[:5]
    assert tally.given_up() == []
    accepted = tally.accepted()
    kinds = Counter(s.kind for s in accepted)
    assert kinds["pill"] >= 10 and kinds["imaging"] >= 2, kinds

    # Queues drained: every job finished (none failed, queued or running), outbox delivered.
    assert queues.jobs == {"done": kinds["imaging"]}, queues
    assert queues.outbox.get("pending", 0) == 0 and queues.outbox.get("dead", 0) == 0, queues

    # Every accepted verification is in the audit table exactly once, and nothing else is.
    rows = checks.audit_rows(url)
    assert Counter(key for _, _, key in rows) == Counter(s.key for s in accepted)
    assert {(i, k) for i, _, k in rows} == {(s.verification_id, s.key) for s in accepted}

    # No job ran to completion twice: one "done" per job across all worker logs (the killed
    # worker's log included), and the lease fencing left no second record.
    finished = checks.job_finishes([v.log for v in w.fleet.workers])
    imaging_ids = {s.verification_id for s in accepted if s.kind == "imaging"}
    assert set(finished) == imaging_ids and set(finished.values()) == {1}, finished

    # Every DetectedIssue / DiagnosticReport queued is on the FHIR server exactly once.
    expected = checks.expected_writes(url)
    written = checks.fhir_writes(w.ehr)
    types = Counter(t for t, _ in expected)
    assert types["DetectedIssue"] >= 5 and types["DiagnosticReport"] == kinds["imaging"], types
    assert set(expected.values()) == {1}
    assert written == expected, (written - expected, expected - written)
