"""Backoff between attempts at an upstream (FHIR server, PACS): exponential with full jitter,
or the server's own Retry-After (seconds or an HTTP date), capped."""

from __future__ import annotations

import email.utils
import random
import time

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})


def retry_delay(
    attempt: int,
    response: httpx.Response | None,
    *,
    base_s: float,
    max_s: float,
    retry_after_max_s: float,
) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 0)."""
    retry_after = response.headers.get("Retry-After") if response is not None else None
    if retry_after:
        if retry_after.strip().isdigit():
            return min(float(retry_after), retry_after_max_s)
        try:
            when = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, min(when.timestamp() - time.time(), retry_after_max_s))
    return random.uniform(0, min(max_s, base_s * 2**attempt))
