"""Time from `verity serve` to /health/ready on the embedded defaults: first start (initdb +
migrations) and later starts (data kept). Prints figures; asserts nothing about time."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_to_ready(data_dir: str, timeout_s: float = 120.0) -> float:
    port = _free_port()
    env = {**os.environ, "VERITY_DATA_DIR": data_dir, "VERITY_LOG_LEVEL": "WARNING"}
    env["VERITY_AUTH__ENABLED"] = "false"  # no issuer here: readiness would wait on auth
    env.pop("DATABASE_URL", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - t0 < timeout_s:
            if proc.poll() is not None:
                raise SystemExit(f"verity serve exited with {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise SystemExit("not ready in time")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = start_to_ready(tmp)
        later = [start_to_ready(tmp) for _ in range(3)]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import service.main"], check=True)
    import_s = time.perf_counter() - t0
    print("verity serve -> /health/ready (embedded PostgreSQL)")
    print(f"  first start (initdb + migrations): {first:6.2f} s")
    print(f"  later starts (median of {len(later)}):      {statistics.median(later):6.2f} s")
    print(f"  floor: python -c 'import service.main': {import_s:6.2f} s")


if __name__ == "__main__":
    main()
