"""Contract fuzzing in-process, where tests/api/test_contract.py leaves off: schemathesis's
coverage phase (each parameter's boundary and invalid values, derived from the schema, which
the live-server test turns off because its case count grows with the schema) against the app
reached over ASGI (no socket), under its lifespan (models, real PostgreSQL, real tokens from
the real authorization server). Same checks: no 5xx, documented statuses, content types and
schemas (problem+json for errors), invalid data refused, auth not ignored.

Bounded: the coverage phase is deterministic (a fixed set of cases per operation: 927 in
all for the 21 operations when written) and fuzzing adds up to MAX_EXAMPLES generated cases
per operation; a fixed seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi

from service.config import ImagingSettings, OutboxSettings
from service.main import create_app
from tests.api.test_contract import CHECKS, SEED
from tests.conftest import api_settings

MAX_EXAMPLES = 3


class Tokens:
    """API tokens from the real authorization server; they live 5 minutes, so a new one is
    minted every REUSE_S (not per case: ~1000 cases would mean ~1000 token requests)."""

    REUSE_S = 120.0

    def __init__(self, auth_server: Any) -> None:
        self.auth_server = auth_server
        self._token = ""
        self._minted = -math.inf

    def header(self) -> dict[str, str]:
        if time.monotonic() - self._minted > self.REUSE_S:
            audience = self.auth_server.api_audience
            self._token = self.auth_server.mint_token("api-caller", resource=audience)[
                "access_token"
            ]
            self._minted = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"}


@pytest.fixture(scope="module")
def tokens(auth_server: Any) -> Tokens:
    return Tokens(auth_server)


@pytest.fixture(scope="module")
def fuzz_app(
    make_database: Any, auth_server: Any, fhir_server: Any, tmp_path_factory: Any
) -> Iterator[Any]:
    """The app on its own database; schemathesis runs its lifespan in its event-loop thread."""
    settings_ = api_settings(
        make_database("fuzz"), auth_server, tmp_path_factory.mktemp("fuzz"),
        fhir=fhir_server.settings_for("verity-rs384", max_retries=0, timeout_s=5),
        outbox=OutboxSettings(relay_enabled=False),
        imaging=ImagingSettings(worker_enabled=False),
    )  # fmt: skip
    yield create_app(settings_)
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app: Any, tokens: Tokens) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": tokens.header(),
            "request-timeout": 60,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": {
                "examples": {"enabled": False},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=config)


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.mark.timeout(900)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_contract_at_the_boundaries(case: Any, tokens: Tokens) -> None:
    case.call_and_validate(checks=CHECKS, headers=tokens.header())
