"""Client tasks: send verifications with Idempotency-Keys through the load balancer, retry the
documented retryable answers with the same key, and keep every status they saw."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fleet.seed import Request

ACCEPTED = (200, 201, 202)


@dataclass
class Sent:
    """One verification as the client saw it, over all its attempts."""

    kind: str
    key: str
    statuses: list[int]
    seconds: float
    verification_id: str | None  # set once accepted
    ended: float = 0.0  # time.perf_counter() at the last answer


@dataclass
class Tally:
    """Everything the clients saw; `unexpected` must stay empty."""

    sent: list[Sent] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    retryable_5xx: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    unexpected: list[tuple[int, str]] = field(default_factory=list)

    def accepted(self) -> list[Sent]:
        return [s for s in self.sent if s.verification_id is not None]

    def given_up(self) -> list[Sent]:
        return [s for s in self.sent if s.verification_id is None]


def retry_after(response: httpx.Response) -> float | None:
    """The wait a documented retryable answer asks for, or None when it is not retryable."""
    problem: dict[str, Any] = {}
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        problem = response.json()
    header = response.headers.get("retry-after")
    if problem.get("retryable") is True or (response.status_code == 503 and header):
        return float(header) if header and header.isdigit() else 0.5
    return None


async def send_one(
    client: httpx.AsyncClient, req: Request, tally: Tally, deadline_s: float
) -> Sent:
    """Send until accepted, refused for good, or `deadline_s` passes (same key throughout)."""
    key = uuid.uuid4().hex
    sent = Sent(req.kind, key, [], 0.0, None)
    start = time.perf_counter()
    backoff = 0.2
    while time.perf_counter() - start < deadline_s:
        try:
            if req.kind == "pill":
                r = await client.post(
                    "/v1/medication-verifications", headers={"Idempotency-Key": key},
                    data={"medication_request": req.ref},
                    files=[("photo", ("p.jpg", req.photo, "image/jpeg"))],
                )  # fmt: skip
            else:
                r = await client.post("/v1/imaging-verifications", headers={"Idempotency-Key": key},
                                      json={"imaging_study": req.ref})  # fmt: skip
        except httpx.TransportError as exc:  # the balancer itself never goes away
            tally.transport_errors[type(exc).__name__] += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
            continue
        sent.statuses.append(r.status_code)
        tally.statuses[r.status_code] += 1
        if r.status_code in ACCEPTED:
            sent.verification_id = str(r.json()["id"])
            break
        wait = retry_after(r)
        if wait is None:
            tally.unexpected.append((r.status_code, r.text[:300]))
            break
        if r.status_code >= 500:
            tally.retryable_5xx[f"{r.status_code} {r.json().get('code')}"] += 1
        await asyncio.sleep(min(max(wait, backoff), 5.0))
        backoff = min(backoff * 2, 2.0)
    sent.ended = time.perf_counter()
    sent.seconds = sent.ended - start
    tally.sent.append(sent)
    return sent


async def client_task(
    base_url: str, token: str, requests: list[Request], stop: asyncio.Event, tally: Tally,
    *, seed: int, imaging_share: float = 0.15, deadline_s: float = 120.0,
) -> None:  # fmt: skip
    """One client: picks requests at random until `stop`, one at a time."""
    rng = random.Random(seed)
    pills = [r for r in requests if r.kind == "pill"]
    studies = [r for r in requests if r.kind == "imaging"]
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(180.0, connect=5.0),
    ) as client:  # fmt: skip
        while not stop.is_set():
            use_study = studies and (not pills or rng.random() < imaging_share)
            req = rng.choice(studies if use_study else pills)
            await send_one(client, req, tally, deadline_s)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
