"""`verity library import|reembed`: the reference library from the shell."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import psycopg

from service.cli import library_studies
from service.config import Settings
from service.evaluation.pills import read_dataset
from service.store.database import Database
from service.store.pool import connect, reuse
from service.workflows.pills.enrol import enrol_products


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
        return await pills.reembed(reuse(conn)), pills.model_version

    count, version = asyncio.run(_with_library(settings, work))
    print(f"re-embedded {count} reference images with {version}")
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
    library_studies.add_commands(lib_sub)
