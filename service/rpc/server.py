"""The gRPC server inside `verity serve`: started by the app's lifespan (sharing its pool,
models, token validator and FHIR client), bound like HTTP, every limit from GrpcSettings."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.config import GrpcSettings, Settings
from service.rpc.calls import AppState, Backend, Calls
from service.rpc.gen.verity.v1 import imaging_pb2, imaging_pb2_grpc, pills_pb2, pills_pb2_grpc
from service.rpc.health import ReadinessHealth
from service.rpc.imaging import ImagingServicer
from service.rpc.pills import PillsServicer

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    pills_pb2.DESCRIPTOR.services_by_name["Pills"].full_name,
    imaging_pb2.DESCRIPTOR.services_by_name["Imaging"].full_name,
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    reflection.SERVICE_NAME,
)


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    port: int
    health: ReadinessHealth
    _stop: asyncio.Event
    _refresher: asyncio.Task[None]
    _grace_s: float

    async def stop(self) -> None:
        """NOT_SERVING first, then RPCs in flight get the grace period, then the rest end."""
        await self.health.shutting_down()
        self._stop.set()
        await self.server.stop(self._grace_s)
        await self._refresher
        log.info("gRPC server stopped")


def _options(cfg: GrpcSettings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.max_concurrent_streams", cfg.max_concurrent_streams),
    ]


def _credentials(cfg: GrpcSettings) -> grpc.ServerCredentials | None:
    if cfg.tls_cert_file is None or cfg.tls_key_file is None:
        return None
    key, chain = cfg.tls_key_file.read_bytes(), cfg.tls_cert_file.read_bytes()
    return grpc.ssl_server_credentials([(key, chain)])


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc(state: AppState, settings: Settings) -> GrpcServer:
    """Serve verity.v1 Pills and Imaging, health and reflection on settings.server.host."""
    cfg = settings.grpc
    if cfg.port is None:
        raise ValueError("gRPC port not set")
    server = grpc.aio.server(options=_options(cfg), maximum_concurrent_rpcs=cfg.max_concurrent_rpcs)
    calls = Calls(Backend(state))
    pills_pb2_grpc.add_PillsServicer_to_server(PillsServicer(calls), server)
    imaging_pb2_grpc.add_ImagingServicer_to_server(ImagingServicer(calls), server)
    health = ReadinessHealth(state)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(SERVICE_NAMES, server)
    where = address(settings.server.host, cfg.port)
    credentials = _credentials(cfg)
    if credentials is None:
        port = server.add_insecure_port(where)
    else:
        port = server.add_secure_port(where, credentials)
    await server.start()
    stop = asyncio.Event()
    refresher = asyncio.create_task(health.refresh_forever(cfg.health_poll_s, stop))
    log.info("gRPC server started", extra={"port": port, "tls": credentials is not None})
    return GrpcServer(server, port, health, stop, refresher, cfg.shutdown_grace_s)
