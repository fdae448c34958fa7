"""A Verity fleet on loopback: PostgreSQL over TCP, `verity db upgrade` once, N API replicas
(`verity serve`, relay and imaging worker off) behind haproxy, M `verity worker` processes,
all against the real authorization, FHIR and DICOMweb servers."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fleet.procs import REPO, Balancer, Postgres, Verity
from tests.servers.servers import client_pem_env, free_port

# Short polls, leases and backoffs: a killed worker's leases come back within seconds, and a
# FHIR outage is retried (not dead-lettered) for longer than it lasts.
TUNING = {
    "VERITY_ENVIRONMENT": "test",
    "VERITY_FHIR__MAX_RETRIES": "1", "VERITY_FHIR__TIMEOUT_S": "10",
    "VERITY_FHIR__CONNECT_TIMEOUT_S": "1", "VERITY_FHIR__BACKOFF_BASE_S": "0.2",
    "VERITY_FHIR__BACKOFF_MAX_S": "1",
    "VERITY_OUTBOX__POLL_INTERVAL_S": "0.2", "VERITY_OUTBOX__BACKOFF_BASE_S": "0.5",
    "VERITY_OUTBOX__BACKOFF_MAX_S": "2", "VERITY_OUTBOX__MAX_ATTEMPTS": "200",
    "VERITY_OUTBOX__LEASE_S": "10",
    "VERITY_IMAGING__POLL_INTERVAL_S": "0.2", "VERITY_IMAGING__LEASE_S": "10",
    "VERITY_IMAGING__BACKOFF_BASE_S": "0.5", "VERITY_IMAGING__BACKOFF_MAX_S": "2",
    "VERITY_IMAGING__MAX_ATTEMPTS": "100",
    "VERITY_IMAGING__PATIENT_ID_ISSUERS": '["HOSPITAL.EXAMPLE"]',
    "VERITY_PACS__MAX_RETRIES": "1", "VERITY_PACS__TIMEOUT_S": "15",
}  # fmt: skip
# Medplum indexes every R4 definition at start: seconds, far more on a loaded 2-core machine.
FHIR_READY_TIMEOUT_S = 180.0
API_ONLY = {"VERITY_OUTBOX__RELAY_ENABLED": "false", "VERITY_IMAGING__WORKER_ENABLED": "false"}


def verity_cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run one `verity` command to completion; its output (fails loudly)."""
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@dataclass
class Fleet:
    """The processes of one fleet; `base_url` is the balancer's (or the single API's)."""

    workdir: Path
    auth: Any  # tests.servers.servers.AuthServer
    fhir_base_url: str
    pacs_base_url: str
    pg: Postgres = field(init=False)
    apis: list[Verity] = field(default_factory=list)
    workers: list[Verity] = field(default_factory=list)
    lb: Balancer | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(self.workdir / "pg")
        self.pg.workdir.mkdir(exist_ok=True)

    def env(self, name: str) -> dict[str, str]:
        return {
            **TUNING,
            "DATABASE_URL": self.pg.url(),
            "VERITY_DATA_DIR": str(self.workdir / "data" / name),
            "VERITY_AUTH__ISSUER": self.auth.issuer,
            "VERITY_AUTH__AUDIENCE": self.auth.api_audience,
            "VERITY_FHIR__BASE_URL": self.fhir_base_url,
            **client_pem_env(self.auth.clients["verity-rs384"]),
            "VERITY_PACS__BASE_URL": self.pacs_base_url,
        }

    def prepare(self, library: Path) -> str:
        """Start PostgreSQL, migrate once, import the pill library; the output of the import."""
        self.pg.start()
        env = self.env("admin")
        verity_cli(env, "db", "upgrade")
        return verity_cli(env, "library", "import", str(library))

    def add_api(self, *, api_only: bool = True) -> Verity:
        name = f"api{len(self.apis)}"
        port = free_port()
        env = {**self.env(name), **(API_ONLY if api_only else {})}
        v = Verity(name, ["serve", "--port", str(port)], env, self.workdir / f"{name}.log", port)
        self.apis.append(v)
        return v

    def add_worker(self) -> Verity:
        name = f"worker{len(self.workers)}"
        v = Verity(name, ["worker"], self.env(name), self.workdir / f"{name}.log")
        self.workers.append(v)
        return v

    def start(self, apis: int, workers: int, *, balancer: bool = True) -> str:
        """Start the processes (all at once: they load their models in parallel), wait until
        each is ready; return the URL clients use."""
        procs = [self.add_api() for _ in range(apis)] + [self.add_worker() for _ in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.wait_ready()
        if not balancer:
            assert len(self.apis) == 1
            return f"http://127.0.0.1:{self.apis[0].port}"
        self.lb = Balancer(self.workdir / "haproxy")
        self.lb.start([a.port for a in self.apis if a.port is not None])
        return self.lb.url

    def restart(self, proc: Verity) -> None:
        """SIGKILL, then start again (same port, same environment)."""
        proc.kill()
        proc.start()

    def stop_processes(self) -> None:
        if self.lb is not None:
            self.lb.stop()
            self.lb = None
        for p in [*self.apis, *self.workers]:
            p.stop()
        self.apis, self.workers = [], []

    def stop(self) -> None:
        self.stop_processes()
        self.pg.stop()


def start_fhir(auth: Any, workdir: Path) -> Any:
    """The test FHIR server (tests/servers/fhir_server.mjs) with a state file: stopped and
    started again on the same port, it still holds what it held (an EHR that went down)."""
    from tests.servers.servers import FhirServer, NodeServer

    base = f"http://127.0.0.1:{auth.fhir_port}/fhir"
    config = {
        "port": auth.fhir_port, "issuer": auth.issuer, "jwks_uri": auth.jwks_uri,
        "token_endpoint": auth.token_endpoint, "audience": base,
        "state_file": str(workdir / "fhir-state.json"),
    }  # fmt: skip
    node = NodeServer("fhir_server.mjs", config, workdir, f"{base}/metadata")
    node.ready_timeout_s = FHIR_READY_TIMEOUT_S
    node.start()
    return FhirServer(base, auth.fhir_port, node, auth)
