"""`verity serve --grpc-port` as a real process, configured by environment variables only: TLS
from certificate files, the health service, a call with a real token, the bound on concurrent
RPCs, and JSON access log lines without tokens."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.rpc.gen.verity.v1 import pills_pb2 as pb
from service.rpc.gen.verity.v1 import pills_pb2_grpc
from tests.conftest import REPO_ROOT
from tests.servers.servers import free_port
from tests.workflows.conftest import PHOTO_A, PRODUCT_A, photo

MAX_RPCS = 2


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost / 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )  # fmt: skip
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def served(
    db_url: str, auth_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    workdir = tmp_path_factory.mktemp("grpc-serve")
    cert, key = self_signed(workdir)
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITY_")}
    env.update({
        "DATABASE_URL": db_url, "VERITY_DATA_DIR": str(workdir), "VERITY_ENVIRONMENT": "test",
        "VERITY_AUTH__ISSUER": auth_server.issuer, "VERITY_AUTH__AUDIENCE": auth_server.api_audience,
        "VERITY_GRPC__TLS_CERT_FILE": str(cert), "VERITY_GRPC__TLS_KEY_FILE": str(key),
        "VERITY_GRPC__MAX_CONCURRENT_RPCS": str(MAX_RPCS), "VERITY_IMAGING__WORKER_ENABLED": "false",
    })  # fmt: skip
    log = workdir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port),
             "--grpc-port", str(grpc_port)],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{grpc_port}", credentials)
    try:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield channel, grpc_port, log
    finally:
        channel.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_a_call_over_tls_with_a_real_token(served, api_token):
    channel, _, log = served
    stub = pills_pb2_grpc.PillsStub(channel)
    request = pb.ExtractEmbeddingRequest(image=pb.Image(data=photo(PRODUCT_A, PHOTO_A)))
    resp = stub.ExtractEmbedding(
        request, metadata=(("authorization", f"Bearer {api_token}"),), timeout=60
    )
    assert resp.dimension == len(resp.vector) > 0
    with pytest.raises(grpc.RpcError) as err:
        stub.ExtractEmbedding(request, timeout=60)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    wanted = {("ExtractEmbedding", "OK"), ("ExtractEmbedding", "UNAUTHENTICATED")}
    for _ in range(50):  # the server logs a call just after the client has its answer
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        rpc = [line for line in lines if line.get("msg") == "rpc"]
        if {(r["method"], r["code"]) for r in rpc} >= wanted:
            break
        time.sleep(0.1)
    assert {(r["method"], r["code"]) for r in rpc} >= wanted, rpc
    assert all(r.get("request_id") for r in rpc)
    assert api_token not in log.read_text()


def test_plaintext_is_refused_on_the_tls_port(served):
    _, grpc_port, _ = served
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as plain:
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_concurrent_calls_over_the_bound_are_refused(served, api_token):
    channel, _, _ = served
    stub = pills_pb2_grpc.PillsStub(channel)
    request = pb.IdentifyRequest(image=pb.Image(data=photo(PRODUCT_A, PHOTO_A)))
    md = (("authorization", f"Bearer {api_token}"),)
    futures = [stub.Identify.future(request, metadata=md, timeout=120) for _ in range(3 * MAX_RPCS)]
    codes = []
    for f in futures:
        try:
            f.result()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert codes.count(grpc.StatusCode.OK) >= MAX_RPCS
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
