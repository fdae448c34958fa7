"""grpc.health.v1 from the service's readiness (the same checks as REST /health/ready), per
service name: Pills needs the models, Imaging does not; "" is the whole service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.rpc.calls import AppState, Context
from service.workflows.readiness import readiness

log = logging.getLogger(__name__)

PILLS, IMAGING = "verity.v1.Pills", "verity.v1.Imaging"
# Which readiness checks each service name depends on ("" needs every check).
NEEDS: dict[str, tuple[str, ...]] = {
    "": ("database", "migrations", "models", "auth"),
    PILLS: ("database", "migrations", "models", "auth"),
    IMAGING: ("database", "migrations", "auth"),
}
Serving: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus.ValueType
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class ReadinessHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]  # untyped stub
    """Check recomputes readiness on every call; Watch streams see `refresh_forever`'s updates.
    (Written here rather than subclassing grpc_health's aio servicer, which starts SERVING.)"""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        # Nothing is SERVING before the first readiness check.
        self.status: dict[str, Serving] = dict.fromkeys(NEEDS, NOT_SERVING)

    async def _set(self, name: str, status: Serving) -> None:
        if self.status.get(name) != status:
            self.status[name] = status
            async with self._changed:
                self._changed.notify_all()

    async def refresh(self) -> None:
        """Readiness now, set for every service name (concurrent checks share one probe)."""
        async with self._lock:
            found = await readiness(
                self.state.db, getattr(self.state, "model_status", None),
                getattr(self.state, "token_validator", None),
            )  # fmt: skip
            for name, needs in NEEDS.items():
                ok = all(found.checks[c]["ready"] for c in needs)
                await self._set(name, SERVING if ok else NOT_SERVING)

    async def shutting_down(self) -> None:
        """Tell watchers and load balancers to stop sending before the server stops."""
        for name in NEEDS:
            await self._set(name, NOT_SERVING)

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in NEEDS:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        await self.refresh()
        return health_pb2.HealthCheckResponse(status=self.status[request.service])

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last = None
        while True:
            status = self.status.get(request.service, SERVICE_UNKNOWN)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            async with self._changed:
                await self._changed.wait()

    async def refresh_forever(self, interval_s: float, stop: asyncio.Event) -> None:
        """Keep Watch subscribers current until `stop` (a failed check is NOT_SERVING, logged)."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:  # readiness itself failing: say not serving, keep polling
                log.warning("gRPC health refresh failed: %s", type(exc).__name__)
                for name in NEEDS:
                    await self._set(name, NOT_SERVING)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass
