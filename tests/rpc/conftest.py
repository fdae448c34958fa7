"""The real app with its gRPC server on 127.0.0.1 (port chosen by the OS), the real
authorization, FHIR and DICOMweb servers, its own database and a small enrolled library; a
grpc.aio channel to it and metadata with real tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from service.config import GrpcSettings, OutboxSettings, PacsSettings
from service.evaluation.pills import read_dataset
from service.rpc.gen.verity.v1 import imaging_pb2_grpc, pills_pb2_grpc
from service.store import migrate
from service.workflows.pills.enrol import enrol_products
from tests.conftest import SHARED_DATA, api_settings, app_client
from tests.workflows.conftest import PRODUCT_A, PRODUCT_B
from tests.workflows.test_imaging_e2e import imaging_settings

# A small library: the two products the tests photograph and a few others to rank against.
LIBRARY = {PRODUCT_A, PRODUCT_B, "ndc_00002-3228-30", "ndc_00003-4222-16", "ndc_00004-0800-85"}


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def scoped(auth_server: Any, scope: str) -> tuple[tuple[str, str], ...]:
    """Metadata with a real token holding exactly `scope`."""
    token = auth_server.mint_token("api-caller", scope=scope, resource=auth_server.api_audience)
    assert token["scope"] == scope  # the server silently drops a scope it does not allow
    return bearer(token["access_token"])


@pytest.fixture(scope="session")
async def rpc_db(make_database: Any) -> str:
    url: str = make_database("rpc")
    await migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
async def rpc_app(
    rpc_db: str, auth_server: Any, fhir_server: Any, orthanc: Any, api_token: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The app (REST client for comparisons; `.app.state.grpc.port` for gRPC)."""
    settings = api_settings(
        rpc_db, auth_server, tmp_path_factory.mktemp("rpc"),
        fhir=fhir_server.settings_for("verity-rs384", max_retries=1, timeout_s=5,
                                      connect_timeout_s=1),
        outbox=OutboxSettings(poll_interval_s=0.1, backoff_base_s=0.2, backoff_max_s=1.0),
        pacs=PacsSettings(base_url=orthanc.base_url, max_retries=1, backoff_base_s=0.05,
                          timeout_s=5, connect_timeout_s=1),
        imaging=imaging_settings(),
        grpc=GrpcSettings(port=0, watch_poll_s=0.1, health_poll_s=0.5),
    )  # fmt: skip
    async with app_client(settings, api_token, timeout=120) as client:
        entries = (
            (d.product, d.reference_images())
            for d in read_dataset(SHARED_DATA / "pills")
            if d.product.id in LIBRARY
        )
        await enrol_products(client.app.state.pills, client.app.state.db.pool.connection, entries)
        yield client


@pytest.fixture(scope="session")
async def channel(rpc_app: httpx.AsyncClient) -> AsyncIterator[grpc.aio.Channel]:
    port = rpc_app.app.state.grpc.port  # type: ignore[attr-defined]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def pills(channel: grpc.aio.Channel) -> pills_pb2_grpc.PillsStub:
    return pills_pb2_grpc.PillsStub(channel)


@pytest.fixture(scope="session")
def imaging(channel: grpc.aio.Channel) -> imaging_pb2_grpc.ImagingStub:
    return imaging_pb2_grpc.ImagingStub(channel)


@pytest.fixture(scope="session")
def md(api_token: str) -> tuple[tuple[str, str], ...]:
    """Metadata with a real token holding every API scope."""
    return bearer(api_token)
