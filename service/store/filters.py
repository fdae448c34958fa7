"""The WHERE clause of the audit lists (verifications, imaging jobs): equality filters on
trusted column names plus a created_at window and keyset cursor."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def newest_first(
    filters: Mapping[str, Any],
    *,
    since: datetime | None,
    until: datetime | None,
    before: datetime | None,
) -> tuple[str, list[Any]]:
    """`column = %s` for each filter that is set (column names are the caller's constants,
    never input), `created_at` >= since, < until, < before (the cursor); and its arguments."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    for op, moment in ((">=", since), ("<", until), ("<", before)):
        if moment is not None:
            where.append(f"created_at {op} %s")
            args.append(moment)
    return " AND ".join(where), args
