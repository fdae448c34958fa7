"""The `verity` command: the parser (each command group adds its own commands) and `main`,
which turns every expected failure into one line."""

from __future__ import annotations

import argparse
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verity",
        description="AI-assisted verification of dispensed pills and imaging studies, "
        "written back to the EHR as FHIR resources.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from service.cli import auth, db, demo, evaluate, imaging, library, outbox, pills, serve
    from service.cli import models as models_cli

    for group in (serve, db, demo, library, evaluate, pills, imaging, outbox, auth, models_cli):
        group.add_commands(sub)
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
