"""`verity auth dev-token`: a bearer token for trying the API on a development machine."""

from __future__ import annotations

import argparse

from service.auth.dev_issuer import MAX_MINUTES, development_issuer
from service.config import Settings


def dev_token(args: argparse.Namespace, settings: Settings) -> int:
    """Print a token from the development issuer (refused outside development)."""
    issuer = development_issuer(settings.auth)
    print(issuer.mint(args.scope, minutes=args.minutes))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auth = sub.add_parser("auth", help="tokens for calling the API")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    dev = auth_sub.add_parser(
        "dev-token",
        help="print a bearer token from the development issuer (development only)",
        description="Mint a JWT signed by the development issuer whose key is kept in "
        "VERITY_DATA_DIR. Works only when VERITY_ENVIRONMENT=development and no "
        "VERITY_AUTH__ISSUER is set; the service trusts it only then.",
    )
    dev.add_argument(
        "--scope",
        action="append",
        required=True,
        metavar="SCOPE",
        help="a scope to grant, e.g. system/Library.rs (repeat for more)",
    )
    dev.add_argument(
        "--minutes",
        type=int,
        default=60,
        help=f"lifetime in minutes (1..{MAX_MINUTES}, default 60)",
    )
    dev.set_defaults(handler=dev_token)
