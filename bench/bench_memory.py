"""Resident memory: `verity serve` with every model loaded (target <= 600 MB besides
PostgreSQL, so only the python process is measured) and the peak of
`verity evaluate pills ../shared/data/pills --json`, with its wall time and printed accuracy.
Prints figures; asserts nothing about time or size.

    python bench/bench_memory.py [--dataset ../shared/data/pills]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
PILLS = REPO.parent / "shared" / "data" / "pills"
MB = 2**20


def postgres_rss(under: str) -> int:
    """Summed RSS of the PostgreSQL server whose data directory lies under `under` (the
    postmaster is daemonised, so it is found by its -D argument, not as a child)."""
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and Path(cmd[0]).name == "postgres" and any(under in part for part in cmd):
            try:
                procs = [p, *p.children(recursive=True)]
                return sum(q.memory_info().rss for q in procs)
            except psutil.Error:
                return 0
    return 0


class PeakRss:
    """Polls a process, and the PostgreSQL server under a folder, for their peak RSS."""

    def __init__(self, pid: int, pg_under: str, interval_s: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.pg_under = pg_under
        self.interval_s = interval_s
        self.peak = 0
        self.peak_pg = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        polls = 0
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            if polls % 10 == 0:  # scanning every process is slower: every 0.5 s
                self.peak_pg = max(self.peak_pg, postgres_rss(self.pg_under))
            polls += 1
            time.sleep(self.interval_s)


def _env(data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITY_")}
    env.pop("DATABASE_URL", None)
    env.update({"VERITY_DATA_DIR": data_dir, "VERITY_LOG_LEVEL": "WARNING"})
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_rss(data_dir: str, photos: list[Path], timeout_s: float = 180.0) -> dict[str, float]:
    """RSS of the serve process (embedded PostgreSQL defaults) at ready and after every photo."""
    port = _free_port()
    # Auth off is allowed on loopback only; it lets one /v1/identify run every model once.
    env = {**_env(data_dir), "VERITY_AUTH__ENABLED": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    out: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"verity serve exited with {proc.returncode}")
            if time.perf_counter() - t0 > timeout_s:
                raise SystemExit("verity serve not ready in time")
            try:
                ready = httpx.get(f"{base}/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        out["ready_s"] = time.perf_counter() - t0
        me = psutil.Process(proc.pid)
        out["ready_mb"] = me.memory_info().rss / MB
        models = ready.json()["checks"]["models"]["models"]
        out["models"] = float(sum(1 for m in models if m["loaded"]))
        out["pg_mb"] = postgres_rss(data_dir) / MB
        peak = 0.0
        for photo in photos:  # every shape of input the dev set has (capsules, full frames)
            files = {"photo": (photo.name, photo.read_bytes(), "image/jpeg")}
            httpx.post(f"{base}/v1/identify", files=files, timeout=120)
            peak = max(peak, me.memory_info().rss / MB)
        out["after_mb"] = me.memory_info().rss / MB
        out["peak_mb"] = peak
        out["photos"] = float(len(photos))
        out["uss_mb"] = me.memory_full_info().uss / MB
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return out


def evaluate(dataset: Path, data_dir: str) -> tuple[float, int, int, float, str]:
    """Wall time, peak RSS of the python process and of its PostgreSQL, and the JSON."""
    import resource

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "evaluate", "pills", str(dataset), "--json"],
        cwd=REPO,
        env={**_env(data_dir), "TMPDIR": data_dir},  # its throwaway database lands here
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    with PeakRss(proc.pid, data_dir) as peak:
        stdout, _ = proc.communicate(timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"verity evaluate exited with {proc.returncode}")
    ru_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    return wall, peak.peak, peak.peak_pg, ru_mb, stdout.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=PILLS)
    args = parser.parse_args()
    photos = sorted(args.dataset.glob("*/photo_*.jpg"))
    with tempfile.TemporaryDirectory(prefix="verity-bench-") as tmp:
        # evaluate first: getrusage(RUSAGE_CHILDREN) then covers it (and what it waited for).
        wall, peak, peak_pg, ru_mb, printed = evaluate(args.dataset, tmp)
        serve = serve_rss(tmp, photos)
    result = json.loads(printed)
    print("Resident memory (RSS) of Verity's python processes; PostgreSQL shown apart.")
    print(f"Figures taken on a shared {psutil.cpu_count()}-core machine "
          f"(load average at end {os.getloadavg()[0]:.1f}).")  # fmt: skip
    print(f"verity serve (embedded PostgreSQL, {serve['models']:.0f} models loaded):")
    row = "  {:<48} {:6.0f} MB{}"
    print(row.format(f"at /health/ready ({serve['ready_s']:.1f} s)", serve["ready_mb"], ""))
    print(
        row.format(
            f"after {serve['photos']:.0f} x /v1/identify (every dev photo)",
            serve["after_mb"],
            f"  (USS {serve['uss_mb']:.0f} MB)  target <= 600 MB",
        )
    )
    print(row.format("peak during those calls (polled after each)", serve["peak_mb"], ""))
    print(row.format("PostgreSQL, not counted (RSS summed)", serve["pg_mb"], ""))
    print(f"verity evaluate pills {args.dataset} --json:")
    print(f"  wall time {wall:.1f} s (target < 60 s)")
    print(row.format("peak RSS, python process (psutil, 50 ms poll)", peak / MB, ""))
    print(row.format("peak RSS of its PostgreSQL (summed, 0.5 s poll)", peak_pg / MB, ""))
    print(row.format("getrusage(RUSAGE_CHILDREN).ru_maxrss", ru_mb,
                     "  (largest single process it waited for)"))  # fmt: skip
    print(f"  accuracy: top1 {result['top1']}, true_accept_rate {result['true_accept_rate']},"
          f" false_accept_rate {result['false_accept_rate']}")  # fmt: skip
    print("  printed JSON, as printed:")
    print(printed.strip())


if __name__ == "__main__":
    main()
