"""Verdicts and human decisions per day for the audit view's chart. The override rate (a
person confirmed as right what Verity flagged, over all decisions) is the field measure of
Verity's accuracy that a hospital has."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, timedelta

from service.config import AuditViewSettings
from service.store import verifications as audit
from service.store.pool import Connect
from service.workflows.audit import AuditQuery, day_start


@dataclass(frozen=True)
class ChartData:
    start: date
    end: date  # inclusive
    days: list[audit.DayCount]  # every day of the period, zeros included
    clamped: bool  # the search's period was longer than one chart shows

    def total(self, name: str) -> int:
        return sum(int(getattr(d, name)) for d in self.days)

    @property
    def override_rate(self) -> float | None:
        """Overrides / decisions over the period; None without decisions."""
        decisions = self.total("decisions")
        return self.total("overrides") / decisions if decisions else None


def period(query: AuditQuery, settings: AuditViewSettings, today: date) -> tuple[date, date, bool]:
    """The charted days: the search's from/to, else the last `chart_default_days` up to 'to'
    (or today); at most `chart_max_days`, the latest kept."""
    end = query.date_to or today
    start = query.date_from or end - timedelta(days=settings.chart_default_days - 1)
    clamped = (end - start).days + 1 > settings.chart_max_days
    if clamped:
        start = end - timedelta(days=settings.chart_max_days - 1)
    return start, end, clamped


async def daily(
    connect: Connect, query: AuditQuery, settings: AuditViewSettings, today: date
) -> ChartData:
    """The search's verifications in the charted period, counted per day (UTC)."""
    start, end, clamped = period(query, settings, today)
    window = dataclasses.replace(
        query.filter(), since=day_start(start), until=day_start(end + timedelta(days=1))
    )
    async with connect() as conn:
        counted = {d.day: d for d in await audit.daily_counts(conn, window)}
    days = [
        counted.get(day, audit.DayCount(day, 0, 0, 0, 0, 0))
        for day in (start + timedelta(days=i) for i in range((end - start).days + 1))
    ]
    return ChartData(start, end, days, clamped)
