"""`verity serve`: the HTTP API (and the outbox relay, the imaging worker, the gRPC server when
a port is set) under uvicorn."""

from __future__ import annotations

import argparse

from service.config import GrpcSettings, Settings, load_settings


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.main import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides or args.grpc_port is not None:
        grpc = settings.grpc
        if args.grpc_port is not None:
            grpc = GrpcSettings.model_validate({**grpc.model_dump(), "port": args.grpc_port})
        settings = load_settings(server=settings.server.model_copy(update=overrides), grpc=grpc)
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve", help="run the HTTP API (and the outbox relay, the imaging worker, gRPC if asked)"
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8420)")
    parser.add_argument(
        "--grpc-port",
        type=int,
        help="also serve gRPC on this port, same host (default: VERITY_GRPC__PORT, else off)",
    )
    parser.set_defaults(handler=serve)
