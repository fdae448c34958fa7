"""After a fleet run: what the audit table, the job and outbox queues and the FHIR server hold,
counted, so the test can compare them with what the clients were told."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from service.config import WritebackSettings
from tests.fleet.seed import Ehr

IDENTIFIER_SYSTEM = WritebackSettings().identifier_system  # the default the fleet runs under
WRITTEN_TYPES = ("DetectedIssue", "DiagnosticReport")


@dataclass
class Queues:
    jobs: dict[str, int]  # state -> count
    outbox: dict[str, int]  # status -> count

    @property
    def drained(self) -> bool:
        busy = self.jobs.get("queued", 0) + self.jobs.get("running", 0)
        return busy == 0 and self.outbox.get("pending", 0) == 0


def queues(url: str) -> Queues:
    with psycopg.connect(url, autocommit=True) as c:
        jobs = dict(c.execute("SELECT state, count(*) FROM imaging_job GROUP BY state").fetchall())
        outbox = dict(c.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
    return Queues(jobs, outbox)


def wait_drained(url: str, timeout: float) -> Queues:
    """Poll until no job is queued or running and no outbox row is pending (or time is up)."""
    deadline = time.monotonic() + timeout
    while not (q := queues(url)).drained and time.monotonic() < deadline:
        time.sleep(0.5)
    return q


def audit_rows(url: str) -> list[tuple[str, str, str | None]]:
    """(id, kind, idempotency_key) of every verification recorded (an imaging verification's
    key is on its job, whose id it shares)."""
    with psycopg.connect(url, autocommit=True) as c:
        rows = c.execute(
            """SELECT v.id::text, v.kind, coalesce(v.idempotency_key, j.idempotency_key)
                 FROM verification v LEFT JOIN imaging_job j ON j.id = v.id"""
        ).fetchall()
    return [(str(a), str(b), c_) for a, b, c_ in rows]


def job_attempts(url: str) -> Counter[int]:
    """How many claims each job needed (1 = run once; more = taken over after a kill/outage)."""
    with psycopg.connect(url, autocommit=True) as c:
        rows = c.execute("SELECT attempts, count(*) FROM imaging_job GROUP BY attempts").fetchall()
    return Counter({int(a): int(n) for a, n in rows})


def expected_writes(url: str) -> Counter[tuple[str, str]]:
    """(resource type, identifier value) of every DetectedIssue / DiagnosticReport queued."""
    with psycopg.connect(url, autocommit=True) as c:
        payloads = [r[0] for r in c.execute("SELECT payload FROM outbox").fetchall()]
    return _count(payloads)


def _count(payloads: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for payload in payloads:
        for entry in payload.get("entry") or []:
            key = _identified(entry.get("resource") or {})
            if key is not None:
                found[key] += 1
    return found


def _identified(resource: dict[str, Any]) -> tuple[str, str] | None:
    if resource.get("resourceType") not in WRITTEN_TYPES:
        return None
    for ident in resource.get("identifier") or []:
        if ident.get("system") == IDENTIFIER_SYSTEM:
            return str(resource["resourceType"]), str(ident["value"])
    return None


def fhir_writes(ehr: Ehr) -> Counter[tuple[str, str]]:
    """The same keys as found on the FHIR server (every copy counted)."""
    found: Counter[tuple[str, str]] = Counter()
    for resource_type in WRITTEN_TYPES:
        for resource in ehr.all_of(resource_type):
            key = _identified(resource)
            if key is not None:
                found[key] += 1
    return found


def job_finishes(logs: list[Path]) -> Counter[str]:
    """Per job id, how many times a worker logged finishing it ("imaging job done")."""
    done: Counter[str] = Counter()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "imaging job done" not in line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("job"):
                done[str(record["job"])] += 1
    return done
