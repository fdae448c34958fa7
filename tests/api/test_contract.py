"""Contract fuzzing: schemathesis drives EVERY operation of the app's own /openapi.json against
the real app (uvicorn on 127.0.0.1, auth on, real tokens, real PostgreSQL, real FHIR server,
a library seeded with real reference photos) and checks there is no server error and that
every response matches its documented status codes, content type and schema.

Bounded and deterministic: a fixed seed, derandomized Hypothesis, MAX_EXAMPLES per operation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from service.config import OutboxSettings
from service.main import create_app
from tests.conftest import SHARED_DATA, api_settings
from tests.servers.servers import free_port

MAX_EXAMPLES = 10
SEED = 20240609
# Two products, each with its two studio reference photos (../shared/data/pills).
LIBRARY = {
    "contract-sertraline": ("ndc_00049-4910-30", "SERTRALINE", "100 mg"),
    "contract-atomoxetine": ("ndc_00002-3228-30", "ATOMOXETINE", "25 mg"),
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


@dataclass
class LiveApi:
    base_url: str
    auth_server: Any

    def fresh_token(self) -> str:
        """A new API token (they live 5 minutes; the session's own may be older than that)."""
        token = self.auth_server.mint_token("api-caller", resource=self.auth_server.api_audience)
        return str(token["access_token"])


def _seed(client: httpx.Client) -> None:
    for pid, (folder, name, strength) in LIBRARY.items():
        body = {
            "id": pid, "name": name, "dose_form": "tablet",
            "ingredients": [{"name": name, "strength": strength}],
        }  # fmt: skip
        assert client.post("/v1/library/products", json=body).status_code == 201
        for ref in ("ref_1.jpg", "ref_2.jpg"):
            data = (SHARED_DATA / "pills" / folder / ref).read_bytes()
            resp = client.post(
                f"/v1/library/products/{pid}/images", files={"image": (ref, data, "image/jpeg")}
            )
            assert resp.status_code == 201, resp.text


@pytest.fixture(scope="module")
def live_api(
    make_database: Any,
    auth_server: Any,
    fhir_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveApi]:
    """The real app under uvicorn on its own database, with a seeded library."""
    settings_ = api_settings(
        make_database("contract"), auth_server, tmp_path_factory.mktemp("contract"),
        fhir=fhir_server.settings_for("verity-rs384", max_retries=0, timeout_s=5),
        outbox=OutboxSettings(relay_enabled=False),
    )  # fmt: skip
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings_), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300  # models load in the lifespan
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.1)
    live = LiveApi(f"http://127.0.0.1:{port}", auth_server)
    try:
        with httpx.Client(
            base_url=live.base_url,
            headers={"Authorization": f"Bearer {live.fresh_token()}"},
            timeout=60,
        ) as client:
            _seed(client)
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def contract(live_api: LiveApi) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {live_api.fresh_token()}"},
            "request-timeout": 60,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            # the coverage phase's case count grows with each schema, unbounded by max-examples
            "phases": {"coverage": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(f"{live_api.base_url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("contract")


# ~1 minute on an idle 2-core machine; the timeout leaves room for a loaded one
@pytest.mark.timeout(900)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_contract(case: Any, live_api: LiveApi) -> None:
    # The token as an explicit header of the call: `ignored_auth` then probes each successful
    # operation without it and with a wrong one (a header only in the config can be taken
    # for a generated one, e.g. on an operation with header parameters such as
    # Idempotency-Key, and then any 2xx is reported as ignored auth).
    case.call_and_validate(
        checks=CHECKS, headers={"Authorization": f"Bearer {live_api.fresh_token()}"}
    )
