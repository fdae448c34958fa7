"""Evaluation through the product's own code: one harness (a throwaway embedded database, per-query
timing, accept/reject rates) that runs a domain's protocol on its labelled dataset. The pill
protocol is in `evaluation/pills.py`; an imaging protocol plugs in the same way (its own
dataset, `prepare`, `queries`, `ask`, `row` and `score`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import psycopg

from service.config import Settings
from service.errors import ClientError
from service.store import migrate
from service.store.embedded import throwaway_database
from service.store.pool import Connect, connect, reuse

Q = TypeVar("Q")
A = TypeVar("A")


@dataclass(frozen=True)
class Query(Generic[Q]):
    """One labelled query: its id for reports, the true answer's key, and its input."""

    key: str
    truth: str
    item: Q


class EvaluationProtocol(Protocol[Q, A]):
    """What a domain brings to the harness: its dataset, enrolment, one query, the scoring."""

    async def prepare(self, connect: Connect) -> None: ...

    def queries(self) -> Iterator[Query[Q]]: ...

    async def ask(self, connect: Connect, item: Q) -> A: ...

    def row(self, query: Query[Q], answer: A | None) -> dict[str, Any]: ...

    def score(self, rows: list[dict[str, Any]], details: bool) -> dict[str, Any]: ...


@asynccontextmanager
async def evaluation_database(settings: Settings) -> AsyncIterator[psycopg.AsyncConnection]:
    """A migrated throwaway embedded PostgreSQL: the user's data is never touched."""
    async with throwaway_database("verity-eval-") as url:
        await migrate.upgrade(url)
        async with await connect(url, settings.db) as conn:
            yield conn


async def run_protocol(
    protocol: EvaluationProtocol[Q, A], settings: Settings, *, details: bool
) -> dict[str, Any]:
    """Prepare, time every query (a refused input is recorded with its error code), score."""
    rows: list[dict[str, Any]] = []
    async with evaluation_database(settings) as conn:
        connect = reuse(conn)
        await protocol.prepare(connect)
        for query in protocol.queries():
            t0 = time.perf_counter()
            answer: A | None = None
            error = None
            try:
                answer = await protocol.ask(connect, query.item)
            except ClientError as exc:
                error = exc.code
            row = {"query": query.key, "ms": (time.perf_counter() - t0) * 1000, "error": error}
            rows.append({**row, **protocol.row(query, answer)})
    return protocol.score(rows, details)


@dataclass
class AcceptCounts:
    """Verification pairs: MATCH where it should be (true accepts), where it must not be
    (false accepts), and UNCERTAIN answers."""

    tp: int = 0
    pos: int = 0
    fp: int = 0
    neg: int = 0
    uncertain: int = 0
    pairs: int = 0

    def add(self, should_match: bool, band: str) -> None:
        self.pairs += 1
        self.uncertain += band == "UNCERTAIN"
        if should_match:
            self.pos += 1
            self.tp += band == "MATCH"
        else:
            self.neg += 1
            self.fp += band == "MATCH"

    def rates(self) -> dict[str, Any]:
        return {
            "true_accept_rate": round(self.tp / max(self.pos, 1), 4),
            "false_accept_rate": round(self.fp / max(self.neg, 1), 4),
            "uncertain_rate": round(self.uncertain / max(self.pairs, 1), 4),
            "true_accepts": self.tp,
            "positives": self.pos,
            "false_accepts": self.fp,
            "negatives": self.neg,
        }


def latency(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Errors and p50/p95 of the per-query wall time."""
    ms = np.array([r["ms"] for r in rows]) if rows else np.zeros(1)
    return {
        "errors": sum(1 for r in rows if r["error"]),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
    }
