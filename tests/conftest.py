"""Shared test configuration: the real test servers are a plugin (tests/servers/fixtures.py)."""

pytest_plugins = ["tests.servers.fixtures"]
