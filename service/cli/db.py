"""`verity db upgrade|status`: the database schema."""

from __future__ import annotations

import argparse
import asyncio

from service.config import Settings
from service.store.database import Database


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from service.store.migrate import upgrade

    async def run() -> list[str]:
        db = Database(settings)
        try:
            return [f"{m.version:04d}_{m.name}" for m in await upgrade(await db.resolve_url())]
        finally:
            await db.stop()

    applied = asyncio.run(run())
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def db_status(args: argparse.Namespace, settings: Settings) -> int:
    from service.store.migrate import MigrationState, status
    from service.store.pool import connect

    async def run() -> list[MigrationState]:
        db = Database(settings)
        try:
            url = await db.resolve_url()
            async with await connect(url, settings.db, vector_types=False) as conn:
                return await status(conn)
        finally:
            await db.stop()

    states = asyncio.run(run())
    for s in states:
        when = s.applied_at.isoformat(timespec="seconds") if s.applied_at else "pending"
        note = "  (file changed since applied)" if s.changed else ""
        print(f"{s.version:04d}  {s.name:<24} {when}{note}")
    return 1 if any(s.applied_at is None for s in states) else 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply pending migrations").set_defaults(handler=db_upgrade)
    db_sub.add_parser(
        "status", help="list migrations and whether each is applied (exit 1 if any pending)"
    ).set_defaults(handler=db_status)
