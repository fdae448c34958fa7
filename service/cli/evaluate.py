"""`verity evaluate pills DIR`: accuracy and latency on a throwaway library."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path

from service.config import Settings


def evaluate_pills(args: argparse.Namespace, settings: Settings) -> int:
    """Print accuracy and latency on a labelled folder (a throwaway library, never the user's)."""
    from service.evaluation.pills import evaluate_pills as run

    result = asyncio.run(run(Path(args.dataset), settings, details=not args.json))
    if args.json:
        print(json.dumps(result))
        return 0
    rows = result.pop("rows", [])
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    confusions: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["enrolled"] and row["ranked"] and row["ranked"][0].product_id != row["product"]:
            confusions[(row["product"], row["ranked"][0].product_id)] += 1
    if confusions:
        print("\nworst confusions (true product -> ranked first):")
        for (truth, got), n in confusions.most_common(10):
            print(f"  {n} x  {truth} -> {got}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser("evaluate", help="measure accuracy on a labelled dataset")
    ev_sub = ev.add_subparsers(dest="evaluate_command", required=True, metavar="KIND")
    pills = ev_sub.add_parser(
        "pills", help="the pill protocol of the dataset README, on a throwaway library"
    )
    pills.add_argument(
        "dataset", metavar="DIR", help="a labelled dataset folder (labels.csv + product folders)"
    )
    pills.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    pills.set_defaults(handler=evaluate_pills)
