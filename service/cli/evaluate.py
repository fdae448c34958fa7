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


def evaluate_studies(args: argparse.Namespace, settings: Settings) -> int:
    """Print the imaging protocol's figures on a labelled studies folder (throwaway archive)."""
    from service.evaluation.studies import evaluate_studies as run

    result = asyncio.run(run(Path(args.dataset), settings, details=not args.json))
    if args.json:
        print(json.dumps(result))
        return 0
    rows = result.pop("rows", [])
    per_code = result.pop("per_code", {})
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(f"\n{'code':<22} expected found recall false_alarms")
    for code, c in per_code.items():
        recall = "-" if c["recall"] is None else f"{c['recall']:.2f}"
        print(f"{code:<22} {c['expected']:>8} {c['found']:>5} {recall:>6} {c['false_alarms']:>12}")
    wrong = [r for r in rows if r["expected"] != r["found"]]
    if wrong:
        print("\ncases not reported exactly (expected -> found):")
        for r in wrong:
            error = f" [{r['error']}]" if r["error"] else ""
            print(f"  {r['query']}: {' '.join(r['expected']) or 'clean'} -> "
                  f"{' '.join(r['found']) or 'nothing'}{error}")  # fmt: skip
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
    studies = ev_sub.add_parser(
        "studies", help="the imaging-study protocol of the dataset README, on a throwaway archive"
    )
    studies.add_argument(
        "dataset", metavar="DIR", help="a studies dataset folder (cases.csv, archive/, cases)"
    )
    studies.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    studies.set_defaults(handler=evaluate_studies)
