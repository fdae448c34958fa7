"""Imaging-study verification through `check_study`, per study size, next to its floors.

For each size N a one-series CT study of N instances is written by `write_ct_series` (real
512x512 slices from pydicom-data, new UIDs, per-instance noise, uncompressed) into a temp dir and
STOWed into ONE real Orthanc (DICOMweb plugin, loopback) started by this script; its studies are
deleted between sizes. Then, in the same run and on the same files:

- the workflow: `check_study` with the real `DicomWebClient` and a throwaway embedded
  PostgreSQL (migrated, psycopg pool): QIDO series, WADO-RS metadata, retrieve, decode,
  fingerprint, per-instance duplicate lookup, header checks. The stages are timed by wrapping
  (timing only) the source's three calls, `check._fingerprints` and the lookup;
- floors: pure pydicom (`dcmread` + `pixel_array` of every file, serially); the workflow's
  decode without network (`read_part10` + `decode_image` + `fingerprint`, serially); Orthanc
  WADO-RS alone (QIDO series + metadata + every instance with plain httpx at the same
  concurrency, bodies read and dropped, nothing decoded);
- `identity` rows: the WADO-RS floor and the workflow with `Accept-Encoding: identity` on every
  request (httpx asks for gzip by default, and Orthanc then deflates every instance; the
  service asks for instances without gzip since this benchmark showed the cost, so the
  workflow rows differ only in the metadata requests);
- CPU seconds of this process and of Orthanc in each network step (they share the cores);
- resident memory: psutil RSS of this process sampled every few ms during `check_study`, peak
  minus the baseline just before it (after gc and malloc_trim, so memory freed by the study
  generation is not counted as headroom), for the whole check and split into the header phase
  and the pixel phase. Streamed instances keep the pixel phase flat as N grows: it is called
  growing when each extra instance adds over a tenth of an instance's size (holding the
  instances would add all of it).

An unreported check of a small study runs first (decoders, worker threads, pool connections).
The fingerprint archive is empty here (every lookup scans nothing); the duplicate lookup over
1M archive rows is measured by bench/bench_fingerprints.py and not repeated.

    PYTHONPATH=$PWD python3 bench/bench_imaging.py [--sizes 1,10,100,500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydicom import Dataset, dcmread

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `tests` beside `service`

from service.config import DbSettings, ImagingSettings, PacsSettings, Settings  # noqa: E402
from service.demo.series import DEFAULT_SOURCE, write_ct_series  # noqa: E402
from service.evaluation.studies import read_case  # noqa: E402
from service.fhir.dicom_sources import SeriesInfo  # noqa: E402
from service.fhir.dicomweb import (  # noqa: E402
    DICOM_JSON,
    INSTANCE_AS_STORED,
    DicomWebClient,
    create_dicomweb_client,
)
from service.store import fingerprints, migrate  # noqa: E402
from service.store.embedded import throwaway_database  # noqa: E402
from service.store.pool import Connect, create_pool  # noqa: E402
from service.verify.imaging.results import Outcome  # noqa: E402
from service.vision.dicom.decode import decode_image, read_part10  # noqa: E402
from service.vision.dicom.fingerprint import fingerprint  # noqa: E402
from service.workflows.imaging import check  # noqa: E402
from tests.servers.orthanc import OrthancServer, start_orthanc  # noqa: E402

STOW_BATCH = 50  # instances per STOW-RS request (bounds the request body, ~26 MB)
RSS_SAMPLE_S = 0.005
HTTP_TIMEOUT_S = 60.0
WARMUP_INSTANCES = 4  # one unreported check first: decoders, threads, pool connections
ISSUER = "HOSPITAL.EXAMPLE"  # the demo series' IssuerOfPatientID (service/demo/study_files.py)


class RssSampler:
    """Peak RSS of this process, sampled by a thread, per phase (`mark()` starts the next)."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline = self._rss()
        self.starts = [self.baseline]  # RSS when each phase began
        self.peaks = [self.baseline]  # peak RSS within each phase

    def _rss(self) -> int:
        return int(self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            self.peaks[-1] = max(self.peaks[-1], self._rss())

    def mark(self) -> None:
        rss = self._rss()
        self.peaks[-1] = max(self.peaks[-1], rss)
        self.starts.append(rss)
        self.peaks.append(rss)

    @property
    def peak(self) -> int:
        return max(self.peaks)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peaks[-1] = max(self.peaks[-1], self._rss())


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so RSS is live memory only."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Stages:
    """Time spent in each stage of one check; `busy` sums calls that ran concurrently."""

    list_s: float = 0.0
    metadata_s: float = 0.0
    fetch_busy_s: float = 0.0
    decode_busy_s: float = 0.0
    lookup_busy_s: float = 0.0


class TimedSource:
    """The real DicomWebClient, each StudySource call timed; `on_first_fetch` marks the end of
    the header phase."""

    def __init__(
        self, client: DicomWebClient, stages: Stages, on_first_fetch: Callable[[], None]
    ) -> None:
        self.client, self.stages = client, stages
        self._on_first_fetch: Callable[[], None] | None = on_first_fetch

    async def series(self, study_uid: str) -> list[SeriesInfo]:
        t0 = time.perf_counter()
        try:
            return await self.client.series(study_uid)
        finally:
            self.stages.list_s += time.perf_counter() - t0

    async def metadata(self, study_uid: str, series_uid: str) -> list[Dataset]:
        t0 = time.perf_counter()
        try:
            return await self.client.metadata(study_uid, series_uid)
        finally:
            self.stages.metadata_s += time.perf_counter() - t0

    async def retrieve(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        if self._on_first_fetch is not None:
            self._on_first_fetch()
            self._on_first_fetch = None
        t0 = time.perf_counter()
        try:
            return await self.client.retrieve(study_uid, series_uid, sop_uid)
        finally:
            self.stages.fetch_busy_s += time.perf_counter() - t0


@contextlib.contextmanager
def timed_workflow(stages: Stages) -> Iterator[None]:
    """Time the workflow's decode (in its worker threads) and its per-frame lookups."""
    decode, lookup = check._fingerprints, fingerprints.nearest_other_patients
    lock = threading.Lock()

    def timed_decode(data: bytes, settings: Settings) -> list[tuple[int, str]]:
        t0 = time.perf_counter()
        try:
            return decode(data, settings)
        finally:
            with lock:
                stages.decode_busy_s += time.perf_counter() - t0

    async def timed_lookup(*args: Any, **kw: Any) -> list[fingerprints.FingerprintMatch]:
        t0 = time.perf_counter()
        try:
            return await lookup(*args, **kw)
        finally:
            stages.lookup_busy_s += time.perf_counter() - t0

    setattr(check, "_fingerprints", timed_decode)  # noqa: B010 - instrumentation only
    setattr(fingerprints, "nearest_other_patients", timed_lookup)  # noqa: B010
    try:
        yield
    finally:
        setattr(check, "_fingerprints", decode)  # noqa: B010
        setattr(fingerprints, "nearest_other_patients", lookup)  # noqa: B010


def pydicom_floor(paths: list[Path]) -> None:
    """dcmread + pixel_array of every file, one after another."""
    for path in paths:
        dcmread(path).pixel_array  # noqa: B018 - the decode is the point


def workflow_decode(paths: list[Path], settings: Settings) -> None:
    """The workflow's own decode of every file, serially, without network or database."""
    for path in paths:
        ds = read_part10(path.read_bytes())
        image = decode_image(
            ds,
            max_frames=settings.imaging.representative_frames,
            frame_limit=settings.limits.max_dicom_frames,
        )
        for frame in image.frames:
            fingerprint(frame)


def _value(row: dict[str, Any], tag: str) -> str:
    return str(row[tag]["Value"][0])


async def wado_floor(base: str, study_uid: str, concurrency: int, encoding: str | None) -> int:
    """QIDO series, WADO-RS metadata and every instance with plain httpx; instances read."""
    limits = httpx.Limits(max_connections=concurrency * 2)
    json_headers = {"Accept": DICOM_JSON}
    instance_headers = {"Accept": INSTANCE_AS_STORED}
    if encoding is not None:
        instance_headers["Accept-Encoding"] = encoding
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, limits=limits) as http:
        r = await http.get(f"{base}/studies/{study_uid}/series", headers=json_headers)
        series = [_value(row, "0020000E") for row in r.raise_for_status().json()]
        targets = []
        for s in series:
            r = await http.get(f"{base}/studies/{study_uid}/series/{s}/metadata",
                               headers=json_headers)  # fmt: skip
            targets += [(s, _value(row, "00080018")) for row in r.raise_for_status().json()]

        async def one(series_uid: str, sop_uid: str) -> None:
            url = f"{base}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
            async with slots, http.stream("GET", url, headers=instance_headers) as r:
                r.raise_for_status()
                async for _ in r.aiter_bytes():
                    pass

        await asyncio.gather(*(one(s, sop) for s, sop in targets))
    return len(targets)


class IdentityEncoding(httpx.AsyncBaseTransport):
    """What-if: every request says `Accept-Encoding: identity` (no gzip on the wire)."""

    def __init__(self, concurrency: int) -> None:
        limits = httpx.Limits(max_connections=concurrency * 2)
        self._inner = httpx.AsyncHTTPTransport(limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = "identity"
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class Step:
    """Wall and CPU seconds (user + system) of this process and of Orthanc over one step."""

    wall_s: float = 0.0
    verity_s: float = 0.0
    orthanc_s: float = 0.0

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return float(t.user + t.system)

    @classmethod
    @contextlib.asynccontextmanager
    async def measure(cls, orthanc: psutil.Process) -> AsyncIterator[Step]:
        step, me = cls(), psutil.Process()
        v0, o0, t0 = cls._cpu(me), cls._cpu(orthanc), time.perf_counter()
        try:
            yield step
        finally:
            step.wall_s = time.perf_counter() - t0
            step.verity_s = cls._cpu(me) - v0
            step.orthanc_s = cls._cpu(orthanc) - o0


@dataclass
class SizeResult:
    n: int
    study_mb: float
    stages: Stages
    outcomes: str
    steps: dict[str, Step]
    rss: RssSampler

    @staticmethod
    def mb(value: int) -> float:
        return value / 2**20

    @property
    def rss_delta_mb(self) -> float:
        """Peak of the whole check over the baseline just before it."""
        return self.mb(self.rss.peak - self.rss.baseline)

    @property
    def rss_headers_mb(self) -> float:
        """Peak while listing and reading the headers, over the baseline."""
        return self.mb(self.rss.peaks[0] - self.rss.baseline)

    @property
    def rss_pixels_mb(self) -> float:
        """Peak while streaming the instances, over the RSS when the first fetch began."""
        if len(self.rss.peaks) < 2:
            return 0.0
        return self.mb(self.rss.peaks[1] - self.rss.starts[1])


def make_study(work: Path, orthanc: OrthancServer, n: int) -> tuple[Path, list[Path], float]:
    """Write the series, STOW it; (folder, paths, STOW seconds)."""
    folder = work / f"study-{n}"
    paths = write_ct_series(folder, n, seed=n)
    t0 = time.perf_counter()
    for i in range(0, n, STOW_BATCH):
        orthanc.stow(paths[i : i + STOW_BATCH])
    return folder, paths, time.perf_counter() - t0


async def run_size(
    n: int, work: Path, orthanc: OrthancServer, settings: Settings, connect: Connect
) -> SizeResult:
    """One study of n instances: STOW, the workflow, the floors, then the study deleted."""
    folder, paths, stow_s = await asyncio.to_thread(make_study, work, orthanc, n)
    order = await read_case(folder)
    study_mb = sum(p.stat().st_size for p in paths) / 1e6
    assert orthanc.proc is not None
    pacs, c = psutil.Process(orthanc.proc.pid), settings.pacs.concurrency
    stages, steps = Stages(), {}
    client = await create_dicomweb_client(orthanc.base_url, settings.pacs)
    try:
        release_freed_memory()
        async with Step.measure(pacs) as steps["workflow"]:
            with RssSampler() as rss, timed_workflow(stages):
                source = TimedSource(client, stages, rss.mark)
                checked = await check.check_study(settings, order, source, connect)
    finally:
        await client.aclose()
    v = checked.verification
    if v.counts.instances_found != n or v.counts.instances_checked != n:
        raise SystemExit(f"N={n}: the check saw {v.counts} instead of {n} instances")
    outcomes = ", ".join(f"{c.code}={c.outcome}" for c in v.checks if c.outcome != Outcome.PASSED)
    async with DicomWebClient(orthanc.base_url, settings.pacs,
                              transport=IdentityEncoding(c)) as plain:  # fmt: skip
        async with Step.measure(pacs) as steps["workflow, identity"]:
            again = await check.check_study(settings, order, plain, connect)
    if again.verification.counts.instances_checked != n:
        raise SystemExit(f"N={n}: the identity-encoding check saw {again.verification.counts}")
    async with Step.measure(pacs) as steps["pydicom"]:
        pydicom_floor(paths)
    async with Step.measure(pacs) as steps["decode+fp"]:
        workflow_decode(paths, settings)
    for name, encoding in (("WADO-RS", None), ("WADO-RS, identity", "identity")):
        async with Step.measure(pacs) as steps[name]:
            seen = await wado_floor(orthanc.base_url, order.study_uid, c, encoding)
        if seen != n:
            raise SystemExit(f"N={n}: the {name} floor saw {seen} instances")
    await asyncio.to_thread(orthanc.delete_all)
    shutil.rmtree(folder)
    print(f"  N={n}: {study_mb:.0f} MB written and STOWed in {stow_s:.1f} s, checked, floors run",
          flush=True)  # fmt: skip
    return SizeResult(n, study_mb, stages, outcomes or "all passed", steps, rss)


def report(results: list[SizeResult], concurrency: int, max_instances: int) -> None:
    print()
    print(f"Workflow: check_study, real DicomWebClient (concurrency {concurrency}), embedded PG")
    print(f"{'N':>5s} {'MB':>5s} {'list':>7s} {'meta':>7s} {'pixels':>7s} {'total':>7s} "
          f"{'inst/s':>6s} | busy: {'fetch':>6s} {'decode':>6s} {'lookup':>6s}"
          "  checks not passed")  # fmt: skip
    for r in results:
        s, total = r.stages, r.steps["workflow"].wall_s
        pixels = total - s.list_s - s.metadata_s
        print(
            f"{r.n:5d} {r.study_mb:5.0f} {s.list_s * 1e3:5.0f}ms {s.metadata_s * 1e3:5.0f}ms "
            f"{pixels:6.2f}s {total:6.2f}s {r.n / total:6.1f} |       "
            f"{s.fetch_busy_s:5.1f}s {s.decode_busy_s:5.1f}s {s.lookup_busy_s:5.1f}s  {r.outcomes}"
        )
    print(
        "  pixels = total - list - metadata: fetch, decode, fingerprint, per-instance lookup, the"
    )
    print("  final SOP UID query. busy = summed over calls that overlapped (gate of "
          f"{concurrency}).")  # fmt: skip
    print()
    print("Next to the floors, same files, same run: instances/s, and CPU ms per instance of this")
    print("process + of Orthanc. pydicom: dcmread + pixel_array, serial; decode+fp: the workflow's")
    print("read_part10 + decode_image + fingerprint, serial; WADO-RS: plain httpx, QIDO + metadata")
    print(f"+ every instance, concurrency {concurrency}, no decoding; 'identity': Accept-Encoding:")
    print("identity on every request instead of httpx's default gzip (the service already asks")
    print("for instances without gzip; its metadata requests keep gzip).")
    for name in results[0].steps:
        cells = []
        for r in results:
            st = r.steps[name]
            cpu = f"{1e3 * st.verity_s / r.n:.0f}+{1e3 * st.orthanc_s / r.n:.0f}"
            cells.append(f"{r.n / st.wall_s:7.1f}/s {cpu:>7s}")
        print(f"  {name:18s}" + "".join(f" | {c}" for c in cells))
    print(f"  {'N =':18s}" + "".join(f" | {r.n:>17d}" for r in results))
    print()
    print("Resident memory of this process during check_study, MB over the baseline before it:")
    print("whole check; header phase (QIDO + metadata); pixel phase (over the RSS at its first")
    print("fetch)")
    for r in results:
        print(f"  N={r.n:4d} ({r.study_mb:4.0f} MB study): baseline {r.mb(r.rss.baseline):4.0f} MB,"
              f" peak {r.mb(r.rss.peak):4.0f} MB: {r.rss_delta_mb:+6.1f} MB; headers "
              f"{r.rss_headers_mb:+6.1f} MB; pixels {r.rss_pixels_mb:+6.1f} MB")  # fmt: skip
    busy = [r for r in results if r.n >= 2 * concurrency] or results
    if len(busy) < 2:
        return
    first, last = busy[0], busy[-1]
    instance_kb = last.study_mb * 1e6 / last.n / 1024

    def per_instance_kb(attr: str) -> float:
        return float(getattr(last, attr) - getattr(first, attr)) * 1024 / (last.n - first.n)

    for name, attr in (("whole check", "rss_delta_mb"), ("pixel phase", "rss_pixels_mb")):
        kb = per_instance_kb(attr)
        verdict = "GROWS with study size" if kb > 0.1 * instance_kb else "does not grow"
        print(f"  {name}, N={first.n} -> N={last.n}: {kb:+.1f} KB per extra instance (an "
              f"instance is {instance_kb:.0f} KB): {verdict}")  # fmt: skip
    kb = per_instance_kb("rss_headers_mb")
    print(f"  header phase, N={first.n} -> N={last.n}: {kb:+.1f} KB per extra instance: the "
          f"series' metadata is parsed at once; at max_instances={max_instances} that is "
          f"{kb * max_instances / 1024:+.0f} MB")  # fmt: skip


async def bench(sizes: list[int], concurrency: int, work: Path) -> None:
    t_start = time.perf_counter()
    orthanc = start_orthanc(work / "orthanc")
    try:
        async with throwaway_database("verity-bench-imaging-") as url:
            await migrate.upgrade(url)
            settings = Settings(
                pacs=PacsSettings(base_url=orthanc.base_url, concurrency=concurrency),
                imaging=ImagingSettings(patient_id_issuers=[ISSUER]),
            )
            async with create_pool(url, DbSettings()) as pool:
                print(f"Imaging-study check per study size; source slice {DEFAULT_SOURCE} (pydicom"
                      "-data), uncompressed CT 512x512; one Orthanc, loopback.")  # fmt: skip
                print("Duplicate lookup over 1M archive rows: see bench/bench_fingerprints.py "
                      "(not repeated; the archive here is empty).")  # fmt: skip
                print(f"{psutil.cpu_count()}-core machine shared with other work; load average "
                      f"at start {os.getloadavg()[0]:.1f}: compare rows of one run.")  # fmt: skip
                await run_size(WARMUP_INSTANCES, work, orthanc, settings, pool.connection)
                results = []
                for n in sizes:
                    results.append(await run_size(n, work, orthanc, settings, pool.connection))
    finally:
        orthanc.stop()
    report(results, concurrency, settings.pacs.max_instances)
    print(f"\nLoad average at end {os.getloadavg()[0]:.1f}; "
          f"total bench time {time.perf_counter() - t_start:.0f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100,500", help="instances per study, ascending")
    parser.add_argument("--concurrency", type=int, default=PacsSettings().concurrency)
    args = parser.parse_args()
    sizes = sorted({int(x) for x in args.sizes.split(",")})
    with tempfile.TemporaryDirectory(prefix="verity-bench-imaging-") as tmp:
        asyncio.run(bench(sizes, args.concurrency, Path(tmp)))


if __name__ == "__main__":
    main()
