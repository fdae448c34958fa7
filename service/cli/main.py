"""The `verity` command: serve, db, demo (and the commands later issues add)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

import psycopg
from psycopg_pool import PoolTimeout

from service.config import ConfigError, Settings, load_settings
from service.errors import DatabaseUnavailable, InternalError, VerityError
from service.logs import configure_logging

log = logging.getLogger(__name__)
Handler = Callable[[argparse.Namespace, Settings], int]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.main import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = load_settings(server=settings.server.model_copy(update=overrides))
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    return 0


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from service.store.database import Database
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


def _db_status(args: argparse.Namespace, settings: Settings) -> int:
    from service.store.database import Database
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


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    from service.demo.runner import run_demo

    if args.database_url is not None:
        try:
            if not conninfo_to_dict(args.database_url):
                raise ProgrammingError("it is empty")
        except ProgrammingError as exc:
            raise ConfigError(f"--database-url is not a PostgreSQL URL: {exc}") from None
    return asyncio.run(run_demo(settings, database_url=args.database_url, show_fhir=args.show_fhir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verity",
        description="AI-assisted verification of dispensed pills and imaging studies, "
        "written back to the EHR as FHIR resources.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP API (and the outbox relay)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8420)")
    serve.set_defaults(handler=_serve)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply pending migrations").set_defaults(handler=_db_upgrade)
    db_sub.add_parser(
        "status", help="list migrations and whether each is applied (exit 1 if any pending)"
    ).set_defaults(handler=_db_status)

    demo = sub.add_parser(
        "demo",
        help="check four sample dispenses on a throwaway database (your library is not used)",
    )
    demo.add_argument(
        "--database-url",
        metavar="URL",
        help="run in this PostgreSQL database instead of a throwaway one (DATABASE_URL is not "
        "used): its audit table keeps the demo's checks; the demo products are removed at the end",
    )
    demo.add_argument(
        "--show-fhir",
        action="store_true",
        help="also print the DetectedIssue and Provenance JSON that would be written to the EHR",
    )
    demo.set_defaults(handler=_demo)

    from service.cli import auth, library, pills

    library.add_commands(sub)
    pills.add_commands(sub)
    auth.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every expected failure is one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"verity: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except ConfigError as exc:
        print(f"verity: {exc}", file=sys.stderr)
        return 2
    except VerityError as exc:
        return _fail(exc)
    except (psycopg.OperationalError, PoolTimeout) as exc:
        return _fail(DatabaseUnavailable(f"cannot reach the database: {_first_line(exc)}"))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A bug, not an expected failure: one line here, the traceback only at DEBUG level.
        log.debug("unexpected error", exc_info=True)
        hint = "set VERITY_LOG_LEVEL=DEBUG for the traceback"
        return _fail(InternalError(f"{type(exc).__name__}: {_first_line(exc)} ({hint})"))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _fail(exc: VerityError) -> int:
    detail = " ".join(str(exc.detail).split())  # one line, even for multi-line driver errors
    print(f"verity: {exc.code} {exc.title}: {detail}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
