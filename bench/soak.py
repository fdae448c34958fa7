"""The soak of bench/bench_fleet.py (--soak SECONDS): the tests/fleet topology (3 APIs behind
haproxy, 2 workers) under `clients` clients; resident memory and open descriptors of every
process and the PostgreSQL connections sampled throughout, growth measured after warm-up."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter

from bench.bench_fleet import setup
from tests.fleet import checks
from tests.fleet.load import Tally, client_task, percentile

# Memory is compared between the end of warm-up and the end of the run: warm-up is this share
# of the run (at least WARMUP_MIN_S), the end is the median of the last END_SAMPLES samples.
WARMUP_SHARE = 0.2
WARMUP_MIN_S = 60.0
END_SAMPLES = 3


async def soak(seconds: float, sample_s: float, clients: int, products: int) -> None:
    with setup(products) as s:
        base_url = await asyncio.to_thread(s.fleet.start, 3, 2)
        procs = [*s.fleet.apis, *s.fleet.workers]
        names = [p.name for p in procs]
        tally, stop = Tally(), asyncio.Event()
        tasks = [
            asyncio.create_task(client_task(base_url, s.token, s.requests, stop, tally, seed=i))
            for i in range(clients)
        ]
        samples: list[tuple[float, list[tuple[int, int]], int]] = []
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            per_proc = [p.sample() for p in procs]
            conns = await asyncio.to_thread(s.fleet.pg.connections)
            samples.append((elapsed, per_proc, conns))
            await asyncio.sleep(sample_s)
        stop.set()
        await asyncio.gather(*tasks)
        queues = await asyncio.to_thread(checks.wait_drained, s.fleet.pg.url(), 300)
        report(seconds, names, samples, tally, queues)


def report(
    seconds: float,
    names: list[str],
    samples: list[tuple[float, list[tuple[int, int]], int]],
    tally: Tally,
    queues: checks.Queues,
) -> None:
    warm = max(WARMUP_MIN_S, WARMUP_SHARE * seconds)
    after = [x for x in samples if x[0] >= warm] or samples[-1:]
    done = tally.accepted()
    pills = [x.seconds for x in done if x.kind == "pill"]
    kinds = Counter(x.kind for x in done)
    print(f"soak: {len(tally.sent)} requests in {seconds:.0f} s, accepted {dict(kinds)}, "
          f"{len(pills) / seconds:.2f} pill/s, p50 {percentile(pills, 50):.2f} s, "
          f"p95 {percentile(pills, 95):.2f} s")  # fmt: skip
    errors = f"{len(tally.unexpected)} unexpected + {len(tally.given_up())} given up"
    print(f"  statuses {dict(tally.statuses)}; retryable 5xx {dict(tally.retryable_5xx)}; "
          f"errors {errors}")  # fmt: skip
    print(f"  warm-up {warm:.0f} s; {len(samples)} samples; RSS MB at warm-up end -> end "
          f"(median of last {END_SAMPLES}), open fds min-max after warm-up:")  # fmt: skip
    for i, name in enumerate(names):
        start_rss = after[0][1][i][0] / 2**20
        end_rss = statistics.median(x[1][i][0] for x in samples[-END_SAMPLES:]) / 2**20
        fds = [x[1][i][1] for x in after]
        print(f"  {name:<8} {start_rss:7.1f} -> {end_rss:7.1f} MB "
              f"({(end_rss / start_rss - 1) * 100:+5.1f}%)  fds {min(fds)}-{max(fds)}")  # fmt: skip
    conns = [x[2] for x in after]
    print(f"  PostgreSQL connections after warm-up: {min(conns)}-{max(conns)}")
    print(f"  queues at the end: jobs {queues.jobs}, outbox {queues.outbox}, "
          f"drained={queues.drained}")  # fmt: skip
    print("  every minute (s: RSS MB per process | fds per process | pg connections):")
    step = max(1, round(60 / max(1e-9, samples[1][0] - samples[0][0]))) if len(samples) > 1 else 1
    for t, per, c in samples[::step]:
        rss = " ".join(f"{r / 2**20:.0f}" for r, _ in per)
        fds = " ".join(str(f) for _, f in per)
        print(f"  {t:5.0f}: {rss} | {fds} | {c}")
