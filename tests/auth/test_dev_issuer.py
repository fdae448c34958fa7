"""The development issuer: `verity auth dev-token` tokens work in development and nowhere else."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.auth.dev_issuer import DEV_AUDIENCE, DEV_ISSUER, KEY_FILE, development_issuer
from service.auth.tokens import TokenValidator
from service.config import AuthSettings, ConfigError, Settings
from service.errors import AuthNotConfigured
from service.main import create_app

REPO = Path(__file__).resolve().parents[2]


def _cli(data_dir: Path, *args: str, environment: str | None = "development", **env: str):
    """Run `verity auth ...` as a user would, with no VERITY_ setting leaking in from outside."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VERITY_")}
    clean.update({"VERITY_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO), **env})
    if environment is not None:
        clean["VERITY_ENVIRONMENT"] = environment
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "auth", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _mint(data_dir: Path, *scopes: str) -> str:
    proc = _cli(data_dir, "dev-token", *(a for s in scopes for a in ("--scope", s)))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


async def _get_products(settings: Settings, token: str) -> tuple[httpx.Response, httpx.Response]:
    """GET a Library.rs-guarded route on the real app, and its readiness."""
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://verity.test"
        ) as client,
    ):
        ready = await client.get("/health/ready")
        if settings.environment == "development":  # the metadata names the issuer in force
            metadata = await client.get("/.well-known/oauth-protected-resource")
            assert metadata.status_code == 200, metadata.text
            expected = settings.auth.issuer or DEV_ISSUER
            assert metadata.json()["authorization_servers"] == [expected]
        resp = await client.get(
            "/v1/library/products", headers={"Authorization": f"Bearer {token}"}
        )
        return resp, ready


async def test_development_token_is_accepted_with_its_scope_and_403_without(db_url, tmp_path):
    read = _mint(tmp_path, "system/Library.rs")
    other = _mint(tmp_path, "system/Verification.c", "system/Outbox.rs")
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    settings = Settings(environment="development", database_url=db_url, data_dir=tmp_path)
    ok, ready = await _get_products(settings, read)
    assert ok.status_code == 200, ok.text
    assert isinstance(ok.json(), list)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["auth"] == {
        "ready": True,
        "mode": "development",
        "issuer": DEV_ISSUER,
    }

    refused, _ = await _get_products(settings, other)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "VERITY-4030"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600  # the service reused it, did not rewrite


def test_command_refuses_outside_development(tmp_path):
    for environment in ("production", None):  # None: the default (production)
        proc = _cli(tmp_path, "dev-token", "--scope", "system/Library.rs", environment=environment)
        assert proc.returncode == 2, proc.stdout
        assert proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("verity: "), proc.stderr
        assert "VERITY_ENVIRONMENT=development" in lines[0]
    assert not (tmp_path / KEY_FILE).exists()  # no key is made where none may be used


def test_command_refuses_when_an_issuer_is_configured(tmp_path):
    proc = _cli(
        tmp_path, "dev-token", "--scope", "system/Library.rs", VERITY_AUTH__ISSUER="https://idp"
    )
    assert proc.returncode == 2 and proc.stderr.startswith("verity: an issuer is configured")


def test_command_refuses_bad_scope_and_lifetime(tmp_path):
    bad = _cli(tmp_path, "dev-token", "--scope", "Library")
    assert bad.returncode == 2 and "not a SMART scope: Library" in bad.stderr
    long = _cli(tmp_path, "dev-token", "--scope", "system/Library.rs", "--minutes", "100000")
    assert long.returncode == 2 and "--minutes" in long.stderr


@pytest.mark.parametrize("environment", ["production", "test"])
async def test_service_does_not_trust_the_dev_key_outside_development(
    environment, db_url, auth_server, tmp_path
):
    token = _mint(tmp_path, "system/Library.rs")  # the key now sits in the data folder
    alone = Settings(environment=environment, database_url=db_url, data_dir=tmp_path)
    assert alone.auth.development_key_dir is None
    resp, ready = await _get_products(alone, token)
    assert resp.status_code == 503 and resp.json()["code"] == AuthNotConfigured.code
    assert ready.status_code == 503

    # With a real issuer configured the dev-signed token is just an untrusted token.
    auth = AuthSettings(issuer=auth_server.issuer, audience=DEV_AUDIENCE)
    with_issuer = Settings(
        environment=environment, database_url=db_url, data_dir=tmp_path, auth=auth
    )
    resp, _ = await _get_products(with_issuer, token)
    assert resp.status_code == 401 and resp.json()["code"] == "VERITY-4010"


async def test_development_with_a_configured_issuer_ignores_the_dev_key(auth_server, tmp_path):
    token = development_issuer(Settings(environment="development", data_dir=tmp_path).auth).mint(
        ["system/Library.rs"]
    )
    auth = AuthSettings(issuer=auth_server.issuer, audience=DEV_AUDIENCE)
    settings = Settings(environment="development", data_dir=tmp_path, auth=auth)
    assert settings.auth.development_key_dir is None
    validator = TokenValidator(settings.auth)
    try:
        assert validator.dev is None
        with pytest.raises(Exception, match="invalid token") as caught:
            await validator.validate(token)
        assert caught.value.code == "VERITY-4010"  # type: ignore[attr-defined]
    finally:
        await validator.aclose()


async def test_dev_token_for_another_audience_is_refused(tmp_path):
    """The validator keeps its audience check for the development issuer too."""
    settings = Settings(environment="development", data_dir=tmp_path)
    validator = TokenValidator(settings.auth)
    other = development_issuer(settings.auth.model_copy(update={"audience": "urn:other"}))
    try:
        ok = await validator.validate(development_issuer(settings.auth).mint(["system/Library.rs"]))
        assert ok.scopes == {"system/Library.rs"} and ok.issuer == DEV_ISSUER
        with pytest.raises(Exception, match="invalid token"):
            await validator.validate(other.mint(["system/Library.rs"]))
    finally:
        await validator.aclose()


def test_development_issuer_is_never_on_by_default(tmp_path):
    assert Settings(data_dir=tmp_path).auth.development_key_dir is None
    assert Settings(environment="test", data_dir=tmp_path).auth.development_key_dir is None
    off = Settings(environment="development", data_dir=tmp_path, auth=AuthSettings(enabled=False))
    assert off.auth.development_key_dir is None
    # One AuthSettings object passed to two Settings does not carry development over.
    shared = AuthSettings()
    assert (
        Settings(environment="development", data_dir=tmp_path, auth=shared).auth.development_key_dir
        == tmp_path
    )
    assert (
        Settings(environment="production", data_dir=tmp_path, auth=shared).auth.development_key_dir
        is None
    )
    assert shared.development_key_dir is None
    with pytest.raises(ConfigError):
        development_issuer(AuthSettings())


def test_key_file_readable_by_others_is_refused(tmp_path):
    auth = Settings(environment="development", data_dir=tmp_path).auth
    development_issuer(auth)
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="permissions 0644"):
        development_issuer(auth)
