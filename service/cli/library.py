"""`verity library ...` and `verity evaluate pills`: the library and accuracy from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from service.config import Settings
from service.evaluation.pills import read_dataset
from service.store.database import Database
from service.store.pool import connect
from service.workflows.pills.enrol import enrol_products
from service.workflows.pills.service import reuse


async def _with_library(settings: Settings, work: Any) -> Any:
    """Run `work(conn, pills)` against the configured database with the models loaded."""
    from service.workflows.pills.service import load_pill_service

    pills = await asyncio.to_thread(load_pill_service, settings)
    db = Database(settings)
    try:
        await db.start()
        async with await connect(db.url or "", settings.db) as conn:
            return await work(conn, pills)
    finally:
        await db.stop()


def library_import(args: argparse.Namespace, settings: Settings) -> int:
    """Upsert every product of a dataset folder and enrol its reference images."""
    dataset = read_dataset(Path(args.directory))

    async def work(conn: psycopg.AsyncConnection, pills: Any) -> tuple[int, int, int]:
        entries = ((d.product, d.reference_images()) for d in dataset)
        done = await enrol_products(pills, reuse(conn), entries)
        return done.products, done.images, done.added

    products, images, new = asyncio.run(_with_library(settings, work))
    print(f"imported {products} products, {images} reference images ({new} new)")
    return 0


def library_reembed(args: argparse.Namespace, settings: Settings) -> int:
    """Embed every stored reference image with the current model version."""

    async def work(conn: psycopg.AsyncConnection, pills: Any) -> tuple[int, str]:
        async with conn.transaction():
            return await pills.reembed(conn), pills.model_version

    count, version = asyncio.run(_with_library(settings, work))
    print(f"re-embedded {count} reference images with {version}")
    return 0


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
    lib = sub.add_parser("library", help="the reference library")
    lib_sub = lib.add_subparsers(dest="library_command", required=True, metavar="ACTION")
    imp = lib_sub.add_parser(
        "import", help="import a dataset folder (labels.csv + <product_id>/ref_N.jpg)"
    )
    imp.add_argument(
        "directory", metavar="DIR", help="the dataset folder (its labels.csv names the products)"
    )
    imp.set_defaults(handler=library_import)
    lib_sub.add_parser(
        "reembed", help="embed every reference image with the current model version"
    ).set_defaults(handler=library_reembed)

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
