"""Scale-out of a Verity fleet on this machine, and a soak of the fleet under steady load.

    python bench/bench_fleet.py [--seconds 45] [--clients 4]    # scale-out table
    python bench/bench_fleet.py --soak 600                       # 4 clients for 10 minutes

Scale-out: one PostgreSQL over TCP, the real authorization / FHIR / DICOMweb servers, the same
pill library and orders; then, in the same run, the single-process floor (one `verity serve`
doing API, relay and imaging jobs, no load balancer) and 1, 2, 3 API replicas behind haproxy
with 1 and 2 workers. Each configuration gets `--clients` clients for `--seconds` (85% pill
verifications, 15% imaging studies) and prints throughput, p50/p95 of the pill requests, the
imaging jobs' submit-to-done time, and the CPU seconds all Verity processes spent per
verification (what a hospital should budget per core). Figures only, no asserts.

Soak: the fleet of tests/fleet (3 APIs, 2 workers) for `--soak` seconds: errors, resident
memory and open descriptors per process and PostgreSQL connections sampled every
`--sample` seconds, growth after warm-up, and the queues at the end (bench/soak.py).
Needs `bash tests/servers/install.sh` and haproxy + orthanc (see .ci/run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` beside `service`

from tests.fleet import checks  # noqa: E402
from tests.fleet.fleet import Fleet, start_fhir  # noqa: E402
from tests.fleet.load import Tally, client_task, percentile  # noqa: E402
from tests.fleet.procs import Verity  # noqa: E402
from tests.fleet.seed import (  # noqa: E402
    Request,
    imaging_requests,
    library_subset,
    pill_requests,
)
from tests.servers.orthanc import start_orthanc  # noqa: E402
from tests.servers.servers import start_auth_server  # noqa: E402

CONFIGS = "0x0,1x1,2x1,3x1,1x2,2x2,3x2"  # APIs x workers; 0x0: the single-process floor


@dataclass
class Setup:
    work: Path
    auth: Any
    fhir: Any
    orthanc: Any
    fleet: Fleet
    requests: list[Request]
    token: str


@contextmanager
def setup(products: int) -> Iterator[Setup]:
    """Servers, PostgreSQL, the library and the orders, once for the whole run."""
    work = Path(tempfile.mkdtemp(prefix="verity-bench-fleet-"))
    auth = start_auth_server(work)
    fhir = start_fhir(auth, work)
    orthanc = start_orthanc(work / "orthanc")
    fleet = Fleet(work / "fleet", auth, fhir.base_url, orthanc.base_url)
    try:
        rows = library_subset(work / "library", products)
        fleet.prepare(work / "library")
        requests = pill_requests(fhir, rows) + imaging_requests(fhir, orthanc)
        token = auth.mint_token("api-caller", resource=auth.api_audience)["access_token"]
        yield Setup(work, auth, fhir, orthanc, fleet, requests, str(token))
    finally:
        fleet.stop()
        orthanc.stop()
        fhir.stop()
        auth.server.stop()
        shutil.rmtree(work, ignore_errors=True)


def cpu_seconds(procs: list[Verity]) -> float:
    """User + system CPU of the Verity processes so far."""
    total = 0.0
    for v in procs:
        if v.proc is not None and v.proc.poll() is None:
            t = psutil.Process(v.proc.pid).cpu_times()
            total += t.user + t.system
    return total


def job_seconds(url: str, since: float) -> list[float]:
    """Submit-to-done seconds of the imaging jobs created after `since` (epoch)."""
    with psycopg.connect(url, autocommit=True) as c:
        rows = c.execute(
            """SELECT extract(epoch FROM updated_at - created_at) FROM imaging_job
               WHERE state = 'done' AND created_at >= to_timestamp(%s)""",
            (since,),
        ).fetchall()
    return [float(r[0]) for r in rows]


async def load(s: Setup, base_url: str, clients: int, seconds: float) -> Tally:
    tally, stop = Tally(), asyncio.Event()
    tasks = [
        asyncio.create_task(client_task(base_url, s.token, s.requests, stop, tally, seed=i))
        for i in range(clients)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return tally


async def one_config(s: Setup, apis: int, workers: int, clients: int, seconds: float) -> str:
    fleet = s.fleet
    if apis == 0:  # the floor: one process does everything, clients talk to it directly
        api = fleet.add_api(api_only=False)
        api.start()
        api.wait_ready()
        base_url, label = f"http://127.0.0.1:{api.port}", "floor: 1 serve, no LB"
    else:
        base_url = await asyncio.to_thread(fleet.start, apis, workers)
        label = f"{apis} API + {workers} worker"
    procs = [*fleet.apis, *fleet.workers]
    await load(s, base_url, 1, 5.0)  # warm-up: first requests, token and JWKS caches
    cpu0, wall0, epoch0 = cpu_seconds(procs), time.perf_counter(), time.time()
    tally = await load(s, base_url, clients, seconds)
    queues = await asyncio.to_thread(checks.wait_drained, fleet.pg.url(), 300)
    drained_s = time.perf_counter() - wall0 - seconds
    cpu = cpu_seconds(procs) - cpu0
    fleet.stop_processes()
    done = tally.accepted()  # throughput: what was answered within the window
    pills = [x.seconds for x in done if x.kind == "pill" and x.ended <= wall0 + seconds]
    jobs = job_seconds(fleet.pg.url(), epoch0)
    errors = len(tally.unexpected) + len(tally.given_up())
    return (
        f"{label:<24} {len(pills) / seconds:6.2f} {percentile(pills, 50):6.2f} "
        f"{percentile(pills, 95):6.2f} {len(jobs) / seconds:6.2f} "
        f"{percentile(jobs, 50) if jobs else 0:6.2f} {percentile(jobs, 95) if jobs else 0:6.2f} "
        f"{cpu / max(1, len(done)):7.2f} {drained_s:6.1f} {errors:4d} {os.getloadavg()[0]:5.1f}"
        + ("" if queues.drained else "  (queues not drained!)")
    )


async def scale_out(clients: int, seconds: float, products: int, configs: str) -> None:
    with setup(products) as s:
        print(
            f"fleet scale-out: {clients} clients x {seconds:.0f} s per configuration, "
            f"{psutil.cpu_count()} CPUs, {len(s.requests)} distinct requests"
        )
        print(
            f"{'configuration':<24} {'pill/s':>6} {'p50 s':>6} {'p95 s':>6} {'img/s':>6} "
            f"{'img p50':>6} {'img p95':>6} {'cpu-s/v':>7} {'drain':>6} {'err':>4} {'load':>5}"
        )
        print(
            "  (pill/s, p50/p95: pill requests answered within the window; img: submit-to-done;"
            " cpu-s/v: CPU seconds of all Verity processes per accepted verification; drain:"
            " s after the window until queues empty; load: 1-min load average, other jobs"
            " included)"
        )
        for config in configs.split(","):
            apis, workers = (int(n) for n in config.split("x"))
            print(await one_config(s, apis, workers, clients, seconds), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="load per configuration")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--products", type=int, default=8, help="pill library size")
    parser.add_argument("--configs", default=CONFIGS, help="APIsxworkers, comma-separated")
    parser.add_argument("--soak", type=float, default=0.0, help="soak for this many seconds")
    parser.add_argument("--sample", type=float, default=10.0, help="soak: sampling period (s)")
    args = parser.parse_args()
    if args.soak:
        from bench.soak import soak

        asyncio.run(soak(args.soak, args.sample, args.clients, args.products))
    else:
        asyncio.run(scale_out(args.clients, args.seconds, args.products, args.configs))
