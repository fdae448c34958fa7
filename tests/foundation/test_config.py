import os
import subprocess
import sys

import pytest

from service.config import ConfigError, is_loopback, load_settings


def test_defaults_are_safe(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    s = load_settings()
    assert s.server.host == "127.0.0.1"
    assert s.auth.enabled is True
    assert s.effective_database_url is None


def test_placeholder_secret_refused(monkeypatch):
    monkeypatch.setenv("VERITY_FHIR__PRIVATE_KEY", "changeme")
    with pytest.raises(ConfigError, match="placeholder"):
        load_settings()


def test_public_bind_without_auth_refused(monkeypatch):
    monkeypatch.setenv("VERITY_SERVER__HOST", "0.0.0.0")
    monkeypatch.setenv("VERITY_AUTH__ENABLED", "false")
    with pytest.raises(ConfigError, match="non-loopback"):
        load_settings()


def test_loopback_without_auth_allowed(monkeypatch):
    monkeypatch.setenv("VERITY_AUTH__ENABLED", "false")
    assert load_settings().auth.enabled is False


def test_database_url_env_wins(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@/x")
    monkeypatch.setenv("VERITY_DB__URL", "postgresql://b@/y")
    assert load_settings().effective_database_url == "postgresql://a@/x"


def test_bad_threshold_order_refused(monkeypatch):
    monkeypatch.setenv("VERITY_DECISION__MATCH_THRESHOLD", "0.5")
    monkeypatch.setenv("VERITY_DECISION__REVIEW_THRESHOLD", "0.9")
    with pytest.raises(ConfigError, match="review_threshold"):
        load_settings()


@pytest.mark.parametrize(
    "host,expected",
    [
        ("127.0.0.1", True),
        ("127.5.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
    ],
)
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_cli_prints_one_line_without_traceback():
    env = {**os.environ, "VERITY_SERVER__PORT": "not-a-port"}
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("verity: invalid configuration: server.port")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
