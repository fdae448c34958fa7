"""Hostile but well-formed values (found by the contract fuzzer) are refused at the edge: 422
problem+json VERITY-4000, and nothing is stored."""

from __future__ import annotations

import uuid

import pytest


def _product(**extra: object) -> dict[str, object]:
    return {"id": f"hostile-{uuid.uuid4().hex[:8]}", "name": "SERTRALINE", **extra}


def _refused(resp) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == "VERITY-4000" and body["retryable"] is False


async def test_nul_in_product_name_is_refused_and_nothing_stored(api):
    body = _product(name="\u0000")
    _refused(await api.post("/v1/library/products", json=body))
    assert (await api.get(f"/v1/library/products/{body['id']}")).status_code == 404


async def test_nul_in_query_parameter_is_refused(api):
    _refused(await api.get("/v1/library/products?rxcui=%00"))


async def test_underflowing_size_on_create_is_refused_and_nothing_stored(api):
    body = _product(size_mm=5e-324)
    _refused(await api.post("/v1/library/products", json=body))
    assert (await api.get(f"/v1/library/products/{body['id']}")).status_code == 404


async def test_underflowing_size_on_replace_is_refused_and_nothing_changed(api):
    body = _product(size_mm=7.5)
    assert (await api.post("/v1/library/products", json=body)).status_code == 201
    _refused(await api.put(f"/v1/library/products/{body['id']}", json={**body, "size_mm": 5e-324}))
    got = (await api.get(f"/v1/library/products/{body['id']}")).json()
    assert got["size_mm"] == pytest.approx(7.5)


@pytest.mark.parametrize("until", ["0.5", "2024-05-01T12:00:00"])
async def test_query_times_are_rfc3339_with_an_offset(api, until):
    _refused(await api.get("/v1/medication-verifications", params={"until": until}))
    ok = await api.get("/v1/medication-verifications", params={"until": "2024-05-01T12:00:00Z"})
    assert ok.status_code == 200, ok.text
