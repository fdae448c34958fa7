"""End to end on the real photo set through the product's own path (the evaluation harness:
library workflow, pgvector shortlist, fused ranking): known queries identified, protocol figures
on target."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from service.evaluation.pills import evaluate_pills

# The whole protocol (enrol 25 products, 70 queries) runs in the first test's setup: about a
# minute on an idle 2-core machine, several on a shared one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Queries whose product the engine must put first (clear imprint, colour and shape).
KNOWN = [
    "ndc_00093-0311-01/photo_4",  # brown/orange capsule "93 311"
    "ndc_00093-3147-01/photo_4",  # red capsule "TEVA 3147"
    "ndc_00003-4222-16/photo_5",  # yellow oval "4222" vs its studio reference
    "ndc_60505-1308-01/photo_2",  # white round "CIP 250"
]


@pytest.fixture(scope="module")
def result(pills_dir: Path) -> dict[str, Any]:
    return asyncio.run(evaluate_pills(pills_dir, Settings(), details=True))


def test_known_queries_are_top1(result: dict[str, Any]) -> None:
    rows = {r["query"]: r for r in result["rows"]}
    for query in KNOWN:
        ranked = rows[query]["ranked"]
        assert ranked, f"{query}: no ranking ({rows[query]['error']})"
        assert ranked[0].product_id == rows[query]["product"], (query, ranked[0])


def test_protocol_counts(result: dict[str, Any]) -> None:
    assert result["products"] == 25 and result["queries"] == 70
    assert result["identification_queries"] == 66
    assert result["negatives"] + result["positives"] == 70 * 25


def test_false_accept_rate_is_within_the_requirement(result: dict[str, Any]) -> None:
    """Required: a wrong pill passed is what hurts patients."""
    assert result["false_accept_rate"] <= 0.01


def test_no_regression_below_measured_figures(result: dict[str, Any]) -> None:
    """Floor a little under what was measured on this set (top5 0.909)."""
    assert result["top5"] >= 0.88


def test_identification_and_acceptance_targets(result: dict[str, Any]) -> None:
    """The issue's targets on this set (measured top1 0.758, TAR 0.712, FAR 0.0083)."""
    assert result["top1"] >= 0.75
    assert result["true_accept_rate"] >= 0.6
    assert result["false_accept_rate"] <= 0.01
