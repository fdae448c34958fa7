"""verity.v1.Pills over a real gRPC channel with real tokens: each method answers what its REST
twin answers, refusals carry the same problem codes (in google.rpc.ErrorInfo), deadlines stop
the work and record nothing, and every call is counted in the Prometheus metrics."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_status import rpc_status
from PIL import Image

from service.errors import catalog
from service.rpc.gen.verity.v1 import pills_pb2 as pb
from service.rpc.status import error_info, grpc_code
from tests.rpc.conftest import scoped
from tests.workflows.conftest import PHOTO_A, PHOTO_B, PRODUCT_A, PRODUCT_B, Ehr, blank, photo

NDC_A = "00093-0311-01"
STATUS = {e.code: (e.status, e.retryable) for e in catalog()}


def image(data: bytes, fmt: str = "") -> pb.Image:
    return pb.Image(data=data, format=fmt)


def problem(err: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """The status code, the ErrorInfo reason (the Verity code) and its metadata."""
    info = error_info(rpc_status.from_call(err))
    assert info is not None, f"no ErrorInfo in {err.code()} {err.details()}"
    assert info.domain == "verity"
    return err.code(), info.reason, dict(info.metadata)


def assert_problem(err: grpc.aio.AioRpcError, code: str) -> dict[str, str]:
    status, reason, metadata = problem(err)
    assert reason == code, (reason, err.details())
    http, retryable = STATUS[code]
    assert status == grpc_code(code, http, retryable)
    assert metadata["retryable"] == ("true" if retryable else "false")
    return metadata


@pytest.fixture(scope="module")
def ehr(fhir_server: Any) -> Ehr:
    return Ehr(fhir_server)


# --- each method, next to its REST twin ---------------------------------------------------------


async def test_extract_embedding_is_the_rest_embedding(pills, md, rpc_app):
    data = photo(PRODUCT_A, PHOTO_A)
    call = pills.ExtractEmbedding(pb.ExtractEmbeddingRequest(image=image(data)), metadata=md)
    resp = await call
    rest = (await rpc_app.post("/v1/embeddings", files={"image": ("a.jpg", data)})).json()
    assert resp.dimension == rest["dim"] == len(resp.vector) > 0
    assert (resp.model, resp.model_version) == (rest["model"], rest["model_version"])
    np.testing.assert_allclose(np.array(resp.vector), np.array(rest["embedding"]), atol=1e-6)
    assert dict(await call.initial_metadata())["x-request-id"]


async def test_compare_two_images_is_the_rest_comparison(pills, md, rpc_app):
    a, same, other = (
        photo(PRODUCT_A, PHOTO_A),
        photo(PRODUCT_A, "photo_1.jpg"),
        photo(PRODUCT_B, PHOTO_B),
    )
    for b in (same, other):
        resp = await pills.Compare(
            pb.CompareRequest(image=image(a), reference_image=image(b)), metadata=md
        )
        rest = (
            await rpc_app.post(
                "/v1/compare", files={"image_a": ("a.jpg", a), "image_b": ("b.jpg", b)}
            )
        ).json()
        assert resp.cosine_similarity == pytest.approx(rest["cosine_similarity"], abs=1e-5)
        assert resp.euclidean_distance == pytest.approx(rest["euclidean_distance"], abs=1e-5)
        assert resp.combined_score == pytest.approx(rest["combined_score"], abs=1e-6)
        assert pb.Band.Name(resp.band) == rest["band"]
        assert resp.evidence["fusion"] == rest["evidence"]["fusion"]


async def test_compare_with_a_stored_product(pills, md):
    a = photo(PRODUCT_A, PHOTO_A)
    own = await pills.Compare(pb.CompareRequest(image=image(a), product_id=PRODUCT_A), metadata=md)
    other = await pills.Compare(
        pb.CompareRequest(image=image(a), product_id=PRODUCT_B), metadata=md
    )
    assert own.combined_score > other.combined_score
    assert own.cosine_similarity > other.cosine_similarity
    assert 0 < own.euclidean_distance < other.euclidean_distance
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await pills.Compare(pb.CompareRequest(image=image(a), product_id="no-such"), metadata=md)
    assert_problem(missing.value, "VERITY-4200")


async def test_identify_is_the_rest_identification(pills, md, rpc_app):
    data = photo(PRODUCT_A, PHOTO_A)
    resp = await pills.Identify(pb.IdentifyRequest(image=image(data)), metadata=md)
    rest = (await rpc_app.post("/v1/identify", files={"photo": ("a.jpg", data)})).json()
    assert resp.pill_count == rest["pill_count"] == len(resp.pills) >= 1
    for got, want in zip(resp.pills, rest["pills"], strict=True):
        assert [c.product_id for c in got.candidates] == [
            c["product_id"] for c in want["candidates"]
        ]
        assert [c.score for c in got.candidates] == pytest.approx(
            [c["score"] for c in want["candidates"]]
        )
        assert [got.bbox.x, got.bbox.y, got.bbox.width, got.bbox.height] == want["bbox"]
    assert resp.pills[0].candidates[0].product_id == PRODUCT_A


async def test_verify_medication_records_what_rest_reads(pills, md, rpc_app, ehr):
    order = ehr.order(ehr.patient(), NDC_A)
    request = pb.VerifyMedicationRequest(
        photos=[image(photo(PRODUCT_A, PHOTO_A), "image/jpeg")], medication_request=order,
        idempotency_key=f"grpc-{time.time_ns()}",
    )  # fmt: skip
    first = await pills.VerifyMedication(request, metadata=md)
    assert first.created and first.verdict == "MATCH" and not first.needs_attention
    stored = (await rpc_app.get(f"/v1/medication-verifications/{first.id}")).json()
    assert stored["verdict"] == first.verdict and stored["order_ref"] == order
    assert first.verification["id"] == first.id and first.verification["order_ref"] == order
    again = await pills.VerifyMedication(request, metadata=md)  # a client retry
    assert (again.id, again.created) == (first.id, False)


async def test_verify_medication_refusals(pills, md, ehr):
    order = ehr.order(ehr.patient(), NDC_A)
    cases = {
        "VERITY-4300": pb.VerifyMedicationRequest(
            photos=[image(photo(PRODUCT_A, PHOTO_A))], medication_request="MedicationRequest/nope"
        ),
        "VERITY-4302": pb.VerifyMedicationRequest(
            photos=[image(photo(PRODUCT_A, PHOTO_A))], medication_request="Patient/1"
        ),
        "VERITY-4000": pb.VerifyMedicationRequest(medication_request=order),  # no photo
    }
    for code, request in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pills.VerifyMedication(request, metadata=md)
        assert_problem(err.value, code)


# --- auth: the same tokens and scopes as REST ----------------------------------------------------


def _claims(auth_server: Any, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": auth_server.issuer, "aud": auth_server.api_audience, "sub": "api-caller",
            "client_id": "api-caller", "iat": now, "exp": now + 300,
            "scope": "system/Library.rs system/Verification.c"}  # fmt: skip
    return {**base, **over}


def _requests() -> dict[str, Any]:
    a = image(photo(PRODUCT_A, PHOTO_A))
    return {
        "ExtractEmbedding": pb.ExtractEmbeddingRequest(image=a),
        "Compare": pb.CompareRequest(image=a, reference_image=a),
        "Identify": pb.IdentifyRequest(image=a),
        "VerifyMedication": pb.VerifyMedicationRequest(
            photos=[a], medication_request="MedicationRequest/1"
        ),
    }


@pytest.mark.parametrize("method", ["ExtractEmbedding", "Compare", "Identify", "VerifyMedication"])
@pytest.mark.parametrize(
    "case", ["none", "basic", "malformed", "expired", "wrong_audience", "wrong_issuer"]
)
async def test_unauthenticated(pills, auth_server, method, case):
    now = int(time.time())
    header = {
        "none": None,
        "basic": "Basic YWxpY2U6c2VjcmV0",
        "malformed": "Bearer not.a.jwt",
        "expired": "Bearer " + auth_server.sign(_claims(auth_server, iat=now - 900, exp=now - 600)),
        "wrong_audience": "Bearer "
        + auth_server.sign(_claims(auth_server, aud="http://other-api")),
        "wrong_issuer": "Bearer "
        + auth_server.sign(_claims(auth_server, iss="http://127.0.0.1:1/evil")),
    }[case]
    metadata = (("authorization", header),) if header else ()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(pills, method)(_requests()[method], metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert_problem(err.value, "VERITY-4010")


@pytest.mark.parametrize(
    "method,scope,missing",
    [
        ("ExtractEmbedding", "system/Verification.c", "Library.rs"),
        ("Compare", "system/Verification.c", "Library.rs"),
        ("Identify", "system/Library.cud", "Library.rs"),
        ("VerifyMedication", "system/Library.rs", "Verification.c"),
        ("VerifyMedication", "system/Verification.rs", "Verification.c"),
    ],
)
async def test_missing_scope_is_permission_denied(pills, auth_server, method, scope, missing):
    token = auth_server.sign(_claims(auth_server, scope=scope))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(pills, method)(
            _requests()[method], metadata=(("authorization", f"Bearer {token}"),)
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert assert_problem(err.value, "VERITY-4030")["required_scopes"] == missing


async def test_real_tokens_narrowed_to_one_scope(pills, auth_server):
    """Tokens the authorization server issues: Library.cruds reads the library, not more."""
    library = scoped(auth_server, "system/Library.cruds")
    assert (
        await pills.ExtractEmbedding(_requests()["ExtractEmbedding"], metadata=library)
    ).dimension
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pills.VerifyMedication(_requests()["VerifyMedication"], metadata=library)
    assert_problem(err.value, "VERITY-4030")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pills.Identify(
            _requests()["Identify"], metadata=scoped(auth_server, "system/Verification.c")
        )
    assert_problem(err.value, "VERITY-4030")


async def test_v1_scope_syntax_is_understood_as_over_rest(pills, auth_server):
    token = auth_server.sign(_claims(auth_server, scope="user/Library.read"))
    resp = await pills.ExtractEmbedding(
        _requests()["ExtractEmbedding"], metadata=(("authorization", f"Bearer {token}"),)
    )
    assert resp.dimension > 0


# --- bad images: the codes REST gives --------------------------------------------------------------


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # tiny file, 400 megapixels
    return buf.getvalue()


BAD = {
    "empty": lambda: b"",
    "not_an_image": lambda: b"this is a text file, not a JPEG\n" * 10,
    "truncated": lambda: photo(PRODUCT_A, PHOTO_A)[:2000],
    "bomb": _bomb,
    "over_the_byte_limit": lambda: b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024),
    "no_pill": blank,
    "too_small": lambda: _png(16, 16),
}


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 200, 200)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_images_get_the_rest_codes(pills, md, rpc_app, case):
    data = BAD[case]()
    rest = await rpc_app.post("/v1/identify", files={"photo": ("x.jpg", data, "image/jpeg")})
    assert rest.status_code >= 400, rest.text
    code = rest.json()["code"]
    for method, request in (
        ("Identify", pb.IdentifyRequest(image=image(data))),
        ("ExtractEmbedding", pb.ExtractEmbeddingRequest(image=image(data))),
        (
            "Compare",
            pb.CompareRequest(image=image(data), reference_image=image(photo(PRODUCT_A, PHOTO_A))),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await getattr(pills, method)(request, metadata=md)
        assert_problem(err.value, code)
        assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT,), (method, case)


async def test_unknown_declared_format_is_4101(pills, md):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pills.ExtractEmbedding(
            pb.ExtractEmbeddingRequest(image=image(photo(PRODUCT_A, PHOTO_A), "image/gif")),
            metadata=md,
        )
    assert_problem(err.value, "VERITY-4101")


async def test_message_over_the_grpc_limit_is_refused_by_grpc(pills, md, rpc_app):
    limit = rpc_app.app.state.settings.grpc.max_message_bytes
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pills.ExtractEmbedding(
            pb.ExtractEmbeddingRequest(image=image(b"\xff\xd8\xff" + b"\0" * limit)), metadata=md
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# --- deadlines: DEADLINE_EXCEEDED and nothing recorded ---------------------------------------------


async def test_deadline_exceeded_records_nothing(pills, md, rpc_app, ehr):
    order = ehr.order(ehr.patient(), NDC_A)
    photos = [image(photo(PRODUCT_A, PHOTO_A))] * 3  # about a second of model work at least
    request = pb.VerifyMedicationRequest(photos=photos, medication_request=order)
    t0 = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pills.VerifyMedication(request, metadata=md, timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 2
    await asyncio.sleep(4)  # long enough for the cancelled work to have recorded, had it run on
    listed = await rpc_app.get("/v1/medication-verifications", params={"order": order})
    assert listed.json()["items"] == []
    metrics = (await rpc_app.get("/metrics")).text
    assert (
        'verity_grpc_requests_total{code="DEADLINE_EXCEEDED",method="VerifyMedication"}' in metrics
    )
    # The same request with time to finish is recorded.
    done = await pills.VerifyMedication(request, metadata=md, timeout=120)
    listed = await rpc_app.get("/v1/medication-verifications", params={"order": order})
    assert [i["id"] for i in listed.json()["items"]] == [done.id]


# --- reflection and metrics ------------------------------------------------------------------------


async def test_reflection_lists_the_services(channel):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    names: set[str] = set()
    async for answer in stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    ):
        names |= {s.name for s in answer.list_services_response.service}
    assert {"verity.v1.Pills", "verity.v1.Imaging", "grpc.health.v1.Health"} <= names
    assert "grpc.reflection.v1alpha.ServerReflection" in names


async def test_calls_are_counted_and_timed(pills, md, rpc_app):
    await pills.ExtractEmbedding(_requests()["ExtractEmbedding"], metadata=md)
    with pytest.raises(grpc.aio.AioRpcError):
        await pills.ExtractEmbedding(pb.ExtractEmbeddingRequest(image=image(b"")), metadata=md)
    metrics = (await rpc_app.get("/metrics")).text
    assert 'verity_grpc_requests_total{code="OK",method="ExtractEmbedding"}' in metrics
    assert (
        'verity_grpc_requests_total{code="INVALID_ARGUMENT",method="ExtractEmbedding"}' in metrics
    )
    assert 'verity_grpc_request_duration_seconds_count{method="ExtractEmbedding"}' in metrics
