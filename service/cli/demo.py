"""`verity demo`: the main job on a throwaway database."""

from __future__ import annotations

import argparse
import asyncio

from service.config import ConfigError, Settings


def demo(args: argparse.Namespace, settings: Settings) -> int:
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


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="check four sample dispenses and four imaging studies on a throwaway database (your "
        "library is not used)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="run in this PostgreSQL database instead of a throwaway one (DATABASE_URL is not "
        "used): its audit table keeps the demo's checks; the demo products are removed at the end",
    )
    parser.add_argument(
        "--show-fhir",
        action="store_true",
        help="also print the DetectedIssue and Provenance JSON that would be written to the EHR",
    )
    parser.set_defaults(handler=demo)
