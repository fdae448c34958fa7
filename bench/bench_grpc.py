"""ExtractEmbedding and Compare over gRPC next to the same calls over REST (`/v1/embeddings`,
`/v1/compare`) and to pure inference in-process (`PillService.embed_photo` / `compare`), in one
run, on the same real photos from ../shared/data/pills: latency p50/p95 (ms) of sequential
calls from one client. REST and gRPC go to one `verity serve --grpc-port` subprocess (throwaway
embedded PostgreSQL, real tokens from the test authorization server); the in-process models
load in this process; the six calls of each round are interleaved (rotating which goes first)
so all three see the same machine. Prints figures; asserts nothing about time.

    python bench/bench_grpc.py [--n 60] [--warmup 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.config import load_settings  # noqa: E402
from service.rpc.gen.verity.v1 import pills_pb2 as pb  # noqa: E402
from service.rpc.gen.verity.v1 import pills_pb2_grpc  # noqa: E402
from service.store.embedded import EmbeddedPostgres  # noqa: E402
from service.workflows.pills.service import PillService, load_pill_service  # noqa: E402
from tests.servers.servers import free_port, start_auth_server  # noqa: E402

# ../shared/data beside the repository (from a nested git worktree: the nearest ancestor's)
PILLS = (
    next(
        (p / "shared" / "data" for p in REPO.parents if (p / "shared" / "data").is_dir()),
        REPO.parent / "shared" / "data",
    )
    / "pills"
)
# (query photo, reference photo) of the same product: the pairs Compare is timed on.
PAIRS = [
    ("ndc_00093-0311-01/photo_4.jpg", "ndc_00093-0311-01/photo_1.jpg"),
    ("ndc_00149-0007-05/photo_4.jpg", "ndc_00149-0007-05/photo_1.jpg"),
    ("ndc_00003-4222-16/photo_5.jpg", "ndc_00003-4222-16/photo_1.jpg"),
    ("ndc_60505-1308-01/photo_2.jpg", "ndc_60505-1308-01/photo_1.jpg"),
]


def pct(ms: list[float], q: float) -> float:
    return statistics.quantiles(ms, n=100, method="inclusive")[int(q) - 1]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


CALLS = ("pure_embed", "rest_embed", "grpc_embed", "pure_compare", "rest_compare", "grpc_compare")


def all_calls(
    pure: Callable[[Coroutine[Any, Any, Any]], object], pills: PillService,
    rest: httpx.Client, stub: pills_pb2_grpc.PillsStub, md: tuple[tuple[str, str], ...],
    a: bytes, b: bytes,
) -> dict[str, Callable[[], object]]:  # fmt: skip
    """The six timed calls on one photo pair (REST answers checked for success; a gRPC error
    raises)."""
    return {
        "pure_embed": lambda: pure(pills.embed_photo(a)),
        "pure_compare": lambda: pure(pills.compare(a, b)),
        "rest_embed": lambda: rest.post(
            "/v1/embeddings", files={"image": ("a.jpg", a)}
        ).raise_for_status(),
        "grpc_embed": lambda: stub.ExtractEmbedding(
            pb.ExtractEmbeddingRequest(image=pb.Image(data=a)), metadata=md, timeout=60
        ),
        "rest_compare": lambda: rest.post(
            "/v1/compare", files={"image_a": ("a.jpg", a), "image_b": ("b.jpg", b)}
        ).raise_for_status(),
        "grpc_compare": lambda: stub.Compare(
            pb.CompareRequest(image=pb.Image(data=a), reference_image=pb.Image(data=b)),
            metadata=md, timeout=60,
        ),
    }  # fmt: skip


def measure(
    images: list[tuple[bytes, bytes]], n: int, warmup: int, workdir: Path
) -> dict[str, list[float]]:
    """In-process models (the floor) and one `verity serve` over REST and gRPC, interleaved."""
    pills = load_pill_service(load_settings(environment="test", data_dir=workdir))
    loop = asyncio.new_event_loop()
    (workdir / "servers").mkdir()
    auth = start_auth_server(workdir / "servers")
    token = auth.mint_token("api-caller", resource=auth.api_audience)["access_token"]
    pg = EmbeddedPostgres(workdir / "pg")
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITY_")}
    env.update({
        "DATABASE_URL": pg.start(), "VERITY_DATA_DIR": str(workdir), "VERITY_LOG_LEVEL": "WARNING",
        "VERITY_AUTH__ISSUER": auth.issuer, "VERITY_AUTH__AUDIENCE": auth.api_audience,
        "VERITY_IMAGING__WORKER_ENABLED": "false", "VERITY_OUTBOX__RELAY_ENABLED": "false",
    })  # fmt: skip
    log = workdir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port),
             "--grpc-port", str(grpc_port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    md = (("authorization", f"Bearer {token}"),)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"verity serve did not come up:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        out: dict[str, list[float]] = {k: [] for k in CALLS}
        with (
            httpx.Client(base_url=base, headers=headers, timeout=60) as rest,
            grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        ):
            stub = pills_pb2_grpc.PillsStub(channel)
            for i in range(warmup + n):
                calls = all_calls(
                    loop.run_until_complete, pills, rest, stub, md, *images[i % len(images)]
                )
                # Rotate which goes first so none always runs on a warmer cache.
                order = list(calls)[i % 6 :] + list(calls)[: i % 6]
                for name in order:
                    ms = timed(calls[name])
                    if i >= warmup:
                        out[name].append(ms)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        pg.stop()
        auth.server.stop()
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="timed calls per figure")
    parser.add_argument("--warmup", type=int, default=6)
    args = parser.parse_args()
    images = [((PILLS / q).read_bytes(), (PILLS / r).read_bytes()) for q, r in PAIRS]
    sizes = sorted(len(a) for a, _ in images)
    print(f"{len(images)} photo pairs ({sizes[0] // 1024}-{sizes[-1] // 1024} KiB), n={args.n}, "
          f"warmup={args.warmup}, {os.cpu_count()} cores")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp:
        times = measure(images, args.n, args.warmup, Path(tmp))
    print(f"{'call':<18}{'in-process p50/p95':>22}{'REST p50/p95':>20}{'gRPC p50/p95':>20}")
    for label, key in (("ExtractEmbedding", "embed"), ("Compare", "compare")):
        cols = [times[f"pure_{key}"], times[f"rest_{key}"], times[f"grpc_{key}"]]
        cells = "".join(f"{pct(c, 50):>12.1f} /{pct(c, 95):>6.1f}" for c in cols)
        print(f"{label:<18}{cells}   ms")


if __name__ == "__main__":
    main()
