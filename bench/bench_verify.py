"""Pill verification end to end against `verity serve` (a subprocess configured only through
environment variables): latency p50/p95 and throughput with 1, 2 and 4 concurrent clients,
next to the identification pipeline alone (`POST /v1/identify`, and in-process
`PillService.analyse` = the floor) in the same run; the serve process's RSS before and after
N verifications; DetectedIssues the outbox relay delivered to the FHIR server.

Uses a throwaway embedded PostgreSQL, the real authorization and FHIR test servers
(tests/servers, `bash tests/servers/install.sh` once) and real photos from ../shared/data/pills.
Prints figures; asserts nothing about time.

    python bench/bench_verify.py [--n 1000] [--per-level 16] [--latency 20] [--warmup 32]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.evaluation.pills import DatasetProduct, read_dataset  # noqa: E402
from service.store.embedded import EmbeddedPostgres  # noqa: E402
from tests.servers.servers import (  # noqa: E402
    AuthServer,
    FhirServer,
    client_pem_env,
    free_port,
    start_auth_server,
    start_fhir_server,
)

PILLS = REPO.parent / "shared" / "data" / "pills"
# (product, photo) pairs the bundled models MATCH against an order for that product, with
# every dataset product that has reference images enrolled; a photo paired with the next
# product's order is a MISMATCH (a DetectedIssue + Provenance through the outbox).
MATCHING = [
    ("ndc_00093-0311-01", "photo_4.jpg"),
    ("ndc_00149-0007-05", "photo_4.jpg"),
    ("ndc_00003-4222-16", "photo_5.jpg"),
    ("ndc_60505-1308-01", "photo_2.jpg"),
]
API_CLIENT = "api-caller"
FHIR_CLIENT = "verity-rs384"
TOKEN_RENEW_S = 120.0  # the test server's API tokens live 300 s


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 50) * 1000:7.1f} ms   p95 {pct(values, 95) * 1000:7.1f} ms"


class Tokens:
    """A real API bearer token from the authorization server, renewed before it expires."""

    def __init__(self, auth: AuthServer) -> None:
        self.auth, self._token, self._at = auth, "", -1e9
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        async with self._lock:
            if time.monotonic() - self._at > TOKEN_RENEW_S:
                minted = await asyncio.to_thread(
                    self.auth.mint_token, API_CLIENT, resource=self.auth.api_audience
                )
                self._token, self._at = minted["access_token"], time.monotonic()
        return {"Authorization": f"Bearer {self._token}"}


class Ehr:
    """Seeds and counts resources on the FHIR server as the EHR's admin."""

    def __init__(self, fhir: FhirServer) -> None:
        self.fhir = fhir

    def create(self, resource: dict[str, Any]) -> str:
        r = httpx.post(
            f"{self.fhir.base_url}/{resource['resourceType']}",
            json=resource,
            headers=self.fhir.admin_headers(),
            timeout=10,
        )
        r.raise_for_status()
        return f"{resource['resourceType']}/{r.json()['id']}"

    def count(self, query: str) -> int:
        r = httpx.get(
            f"{self.fhir.base_url}/{query}&_summary=count",
            headers=self.fhir.admin_headers(),
            timeout=30,
        )
        r.raise_for_status()
        return int(r.json()["total"])


@dataclasses.dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    @property
    def rss_mb(self) -> float:
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20


def start_serve(env: dict[str, str], workdir: Path, timeout_s: float = 180.0) -> Serve:
    """`verity serve` on a free loopback port; returns once /health/ready says 200."""
    port = free_port()
    log = workdir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"verity serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return Serve(proc, base, log)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"verity serve not ready in {timeout_s}s:\n{log.read_text()[-3000:]}")


def serve_env(db_url: str, auth: AuthServer, fhir: FhirServer, data_dir: Path) -> dict[str, str]:
    """Everything `verity serve` needs, as environment variables only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITY_")}
    env.update(
        {
            "DATABASE_URL": db_url,
            "VERITY_DATA_DIR": str(data_dir),
            "VERITY_LOG_LEVEL": "WARNING",
            "VERITY_AUTH__ISSUER": auth.issuer,
            "VERITY_AUTH__AUDIENCE": auth.api_audience,
            "VERITY_FHIR__BASE_URL": fhir.base_url,
            "VERITY_OUTBOX__POLL_INTERVAL_S": "0.5",
            **client_pem_env(auth.clients[FHIR_CLIENT]),
        }
    )
    return env


def product_body(d: DatasetProduct) -> dict[str, Any]:
    p = d.product
    return {
        "id": p.id, "name": p.name, "ndcs": p.ndcs, "rxcui": p.rxcui,
        "ingredients": [{"name": i.name, "strength": i.strength} for i in p.ingredients],
        "dose_form": p.dose_form, "imprint": p.imprint, "colors": p.colors, "shape": p.shape,
    }  # fmt: skip


async def enrol_library(
    client: httpx.AsyncClient, tokens: Tokens, dataset: list[DatasetProduct]
) -> int:
    """Products and reference images through the public API; returns images enrolled."""
    images = 0
    for d in dataset:
        if not d.references:
            continue
        r = await client.post(
            "/v1/library/products", json=product_body(d), headers=await tokens.headers()
        )
        r.raise_for_status()
        for ref in d.references:
            r = await client.post(
                f"/v1/library/products/{d.product.id}/images",
                files={"image": (ref.name, ref.read_bytes(), "image/jpeg")},
                headers=await tokens.headers(),
            )
            r.raise_for_status()
            images += 1
    return images


@dataclasses.dataclass
class Tally:
    verdicts: Counter[str] = dataclasses.field(default_factory=Counter)
    queued: int = 0
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    done: int = 0


async def verify_once(
    client: httpx.AsyncClient, tokens: Tokens, order: str, patient: str, data: bytes, tally: Tally
) -> None:
    r = await client.post(
        "/v1/medication-verifications",
        files=[("photo", ("photo.jpg", data, "image/jpeg"))],
        data={"medication_request": order, "patient": patient},
        headers={**await tokens.headers(), "Idempotency-Key": uuid.uuid4().hex},
    )
    tally.done += 1
    if r.status_code != 201:
        tally.errors[f"{r.status_code} {r.text[:120]}"] += 1
        return
    body = r.json()
    tally.verdicts[body["verdict"]] += 1
    tally.queued += body["fhir"]["status"] == "queued"


async def identify_once(client: httpx.AsyncClient, tokens: Tokens, data: bytes) -> None:
    r = await client.post(
        "/v1/identify",
        files={"photo": ("photo.jpg", data, "image/jpeg")},
        headers=await tokens.headers(),
    )
    r.raise_for_status()


async def run_clients(
    clients: int, total: int, call: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    """`total` calls shared by `clients` concurrent workers: per-call latencies and wall time."""
    latencies: list[float] = []
    next_index = iter(range(total))

    async def worker() -> None:
        for i in next_index:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, time.perf_counter() - t0


def floor_analyse(photos: list[bytes], rounds: int) -> list[float]:
    """In-process PillService.analyse (decode, find, embed, OCR; no HTTP, no database)."""
    from service.config import load_settings
    from service.workflows.pills.service import load_pill_service

    service = load_pill_service(load_settings())

    async def go() -> list[float]:
        await service.analyse(photos[0])  # warm-up
        times = []
        for i in range(rounds):
            t0 = time.perf_counter()
            await service.analyse(photos[i % len(photos)])
            times.append(time.perf_counter() - t0)
        return times

    return asyncio.run(go())


def outbox_rows(db_url: str) -> list[str]:
    """The outbox by status, attempts and last error (what the relay left behind)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """SELECT status, attempts, left(coalesce(last_error, '-'), 100), count(*),
                      round(extract(epoch FROM min(next_attempt_at) - now()))
                 FROM outbox GROUP BY 1, 2, 3 ORDER BY 1, 2"""
        ).fetchall()
    return [
        f"{s}, {a} attempt(s), {n} row(s), next due in {due} s, last error: {e}"
        for s, a, e, n, due in rows
    ]


def log_problems(log: Path) -> Counter[str]:
    """WARNING/ERROR lines of the serve log, counted by message."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if '"WARNING"' in line or '"ERROR"' in line or "Traceback" in line:
            try:
                found[re.sub(r"\d+", "N", str(json.loads(line).get("msg", line)))[:160]] += 1
            except ValueError:
                found[line[:160]] += 1
    return found


async def bench(args: argparse.Namespace, work: Path) -> None:
    t_start = time.perf_counter()
    pg = EmbeddedPostgres(work / "pg")
    db_url = pg.start()
    auth = start_auth_server(work)
    fhir = start_fhir_server(auth, work)
    serve: Serve | None = None
    problems: Counter[str] = Counter()
    try:
        ehr = Ehr(fhir)
        patient = ehr.create({"resourceType": "Patient", "name": [{"family": "Bench"}]})
        orders = {
            product: ehr.create({
                "resourceType": "MedicationRequest", "status": "active", "intent": "order",
                "subject": {"reference": patient},
                "medicationCodeableConcept": {"coding": [
                    {"system": "http://hl7.org/fhir/sid/ndc", "code": product.removeprefix("ndc_")}
                ]},
                "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 1}}]}],
            })
            for product, _ in MATCHING
        }  # fmt: skip
        dataset = read_dataset(PILLS)
        library_size = sum(1 for d in dataset if d.references)
        pictures = [(PILLS / product / name).read_bytes() for product, name in MATCHING]
        # (order, photo): the ordered product's photo, then another product's against that order.
        cases = []
        for i, (product, _) in enumerate(MATCHING):
            cases += [(orders[product], pictures[i]), (orders[product], pictures[i - 1])]
        photos = [photo for _, photo in cases]

        t0 = time.perf_counter()
        serve = start_serve(serve_env(db_url, auth, fhir, work / "data"), work)
        ready_s = time.perf_counter() - t0
        rss_ready = serve.rss_mb
        tokens = Tokens(auth)
        timeout = httpx.Timeout(300.0)
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=serve.base, timeout=timeout, limits=limits) as c:
            t0 = time.perf_counter()
            n_images = await enrol_library(c, tokens, dataset)
            enrol_s = time.perf_counter() - t0
            tally = Tally()

            async def verify(i: int) -> None:
                order, photo = cases[i % len(cases)]
                await verify_once(c, tokens, order, patient, photo, tally)

            async def identify(i: int) -> None:
                await identify_once(c, tokens, photos[i % len(photos)])

            # Warm-up at the highest concurrency, every photo at least twice: allocator arenas
            # and ONNX Runtime buffers reach their working size before the RSS baseline.
            await run_clients(4, args.warmup, verify)
            await run_clients(1, 2, identify)
            rss_base = serve.rss_mb
            done_at_base = tally.done

            floor = await asyncio.to_thread(floor_analyse, photos, args.latency)
            ident, _ = await run_clients(1, args.latency, identify)
            single, _ = await run_clients(1, args.latency, verify)
            levels = {}
            for clients in (1, 2, 4):
                levels[clients] = await run_clients(clients, args.per_level, verify)

            remaining = mem_calls = max(0, args.n - (tally.done - done_at_base))
            rss_curve = [(tally.done - done_at_base, serve.rss_mb)]
            step = max(1, remaining // 4)
            t_mem = time.perf_counter()
            while remaining > 0:
                chunk = min(step, remaining)
                await run_clients(2, chunk, verify)
                remaining -= chunk
                rss_curve.append((tally.done - done_at_base, serve.rss_mb))
            mem_s = time.perf_counter() - t_mem
            n_done = tally.done - done_at_base
            rss_after = serve.rss_mb

        t_wait = time.perf_counter()
        issues = 0
        while time.perf_counter() - t_wait < 60:
            issues = ehr.count(f"DetectedIssue?patient={patient}")
            if issues >= tally.queued:
                break
            await asyncio.sleep(1)
        drain_s = time.perf_counter() - t_wait
        provenances = ehr.count("Provenance?_count=0")
        rows = outbox_rows(db_url)
    finally:
        if serve is not None:
            serve.proc.terminate()
            serve.proc.wait(timeout=60)
            problems = log_problems(serve.log)
        fhir.stop()
        auth.server.stop()
        pg.stop()

    growth = (rss_after - rss_base) / rss_base * 100
    print("Pill verification end to end: `verity serve` subprocess configured by env vars,")
    print("embedded PostgreSQL, real OAuth + FHIR servers, real photos (../shared/data/pills).")
    print(f"Figures taken on a shared {psutil.cpu_count()}-core machine (other test runs active;")
    print(f"load average at end {os.getloadavg()[0]:.1f}): compare rows of this run, not runs.")
    print(f"  serve ready in {ready_s:.1f} s; library enrolled over the API: "
          f"{library_size} products, {n_images} images in {enrol_s:.1f} s")  # fmt: skip
    print(
        f"  cases: {len(cases)} (order, photo) pairs, alternately the ordered product and another"
    )
    print()
    print(f"Latency, one photo, sequential ({args.latency} calls each)")
    print(f"  floor: in-process PillService.analyse      {ms(floor)}")
    print(f"  POST /v1/identify (HTTP, auth, pgvector)   {ms(ident)}")
    print(f"  POST /v1/medication-verifications          {ms(single)}")
    print()
    print(f"Throughput, POST /v1/medication-verifications ({args.per_level} calls per level)")
    for clients, (lat, wall) in levels.items():
        print(f"  {clients} client(s): {len(lat) / wall:5.2f} verifications/s   {ms(lat)}")
    print(f"  (identification alone, 1 client: {1 / statistics.mean(ident):5.2f} photos/s;"
          f" floor: {1 / statistics.mean(floor):5.2f} photos/s)")  # fmt: skip
    print()
    print(f"Resident memory of the serve process (python only, not PostgreSQL), N = {n_done}")
    print(
        f"  at ready (models loaded) {rss_ready:.0f} MB;"
        f" after warm-up ({args.warmup} verifications, 4 clients) {rss_base:.0f} MB"
    )
    print(f"  after N more verifications {rss_after:.0f} MB: growth {growth:+.1f}% (target < 5%)")
    print("  RSS after n verifications: " + ", ".join(f"{n}: {mb:.0f} MB" for n, mb in rss_curve))
    print(f"  the last {mem_calls} verifications (2 clients) took {mem_s:.0f} s")
    print()
    print(f"Verdicts: {dict(sorted(tally.verdicts.items()))}; errors: {dict(tally.errors) or 0}")
    print(f"DetectedIssues on the FHIR server for the patient: {issues} of {tally.queued} queued")
    print(f"  (waited {drain_s:.1f} s after the last request); Provenances: {provenances}")
    print("Outbox at the end:")
    for row in rows:
        print(f"  {row}")
    print(f"Warnings/errors in the serve log: {sum(problems.values())}")
    for message, count in problems.most_common(8):
        print(f"  {count} x {message}")
    print(f"Total bench time {time.perf_counter() - t_start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="verifications for the RSS check")
    parser.add_argument("--per-level", type=int, default=16, help="calls per concurrency level")
    parser.add_argument("--latency", type=int, default=20, help="sequential calls per row")
    parser.add_argument("--warmup", type=int, default=32, help="4-client calls before RSS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verity-bench-") as tmp:
        asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    main()
