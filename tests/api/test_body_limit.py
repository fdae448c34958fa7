"""The request-size limit holds without Content-Length, and a refused upload is not read.

Through the ASGI app with a streamed body (counting what the app pulls from `receive`), and over
a real socket against `verity serve` (uvicorn) with a chunked upload that never ends on its own.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.config import ServerSettings
from service.main import create_app
from tests.api.asgi import BOUNDARY, UPLOAD_HEADERS, call, multipart_upload
from tests.conftest import REPO_ROOT, api_settings, pill_image
from tests.servers.servers import free_port

LIMIT = 1024 * 1024  # a small limit keeps every test bounded in bytes and time
CHUNK = 64 * 1024
BIG = 8 * LIMIT  # what a refused upload offers; bounded, so a regression ends too
CAP = 32 * LIMIT  # what the real-socket client would send at most
PHOTO = ("ndc_00049-4910-30", "ref_1.jpg")  # a real JPEG; bytes after its end are ignored


@pytest.fixture(scope="module")
async def small_app(db_url, auth_server, tmp_path_factory) -> AsyncIterator[Any]:
    """The real app (models loaded) with a 1 MiB request limit."""
    settings = api_settings(
        db_url,
        auth_server,
        tmp_path_factory.mktemp("limit"),
        server=ServerSettings(max_request_bytes=LIMIT),
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=120):
        yield app


def bearer(auth_server: Any, scope: str) -> dict[str, str]:
    token = auth_server.mint_token("api-caller", scope=scope, resource=auth_server.api_audience)
    assert token["scope"] == scope  # the server silently drops a scope it does not allow
    return {"authorization": f"Bearer {token['access_token']}"}


def _problem(answer: Any, status: int, code: str) -> None:
    assert answer.status == status, answer.body[:500]
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code


@pytest.mark.slow  # identifies the photo once under the limit
async def test_chunked_body_over_the_limit_is_413_and_not_processed(small_app, auth_server):
    photo = pill_image(*PHOTO)
    headers = {**UPLOAD_HEADERS, **bearer(auth_server, "system/Library.cruds")}
    # Under the limit the same framing is identified: the 413 below is the limit's doing.
    ok = await call(
        small_app, "POST", "/v1/identify", headers, multipart_upload("photo", photo, len(photo))
    )
    assert ok.status == 200, ok.body[:500]
    too_big = 3 * LIMIT // 2  # a decodable photo padded past the limit (under the image limit)
    answer = await call(
        small_app, "POST", "/v1/identify", headers, multipart_upload("photo", photo, too_big)
    )
    _problem(answer, 413, "VERITY-4130")
    assert answer.json()["retryable"] is False
    assert LIMIT < answer.pulled <= LIMIT + CHUNK  # stopped at the first message past the limit
    assert answer.headers["connection"] == "close"


async def test_chunked_upload_without_token_is_401_before_its_body_is_read(small_app):
    upload = multipart_upload("photo", b"", BIG)
    answer = await call(small_app, "POST", "/v1/identify", UPLOAD_HEADERS, upload)
    _problem(answer, 401, "VERITY-4010")
    assert answer.pulled == 0
    assert answer.headers["connection"] == "close"


async def test_upload_with_a_token_lacking_the_scope_is_403_before_its_body_is_read(
    small_app, auth_server
):
    headers = {**UPLOAD_HEADERS, **bearer(auth_server, "system/Verification.rs")}
    upload = multipart_upload("image", b"", BIG)
    path = "/v1/library/products/any/images"
    answer = await call(small_app, "POST", path, headers, upload)
    _problem(answer, 403, "VERITY-4030")
    assert answer.pulled == 0


async def test_json_body_without_token_is_401_before_it_is_read(small_app):
    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    body = iter([b'{"id": "x", "name": ', b'"' + b"y" * CHUNK + b'"}'])
    answer = await call(small_app, "POST", "/v1/library/products", headers, body)
    _problem(answer, 401, "VERITY-4010")
    assert answer.pulled == 0


# --- over a real socket: `verity serve` --------------------------------------------------------


@pytest.fixture(scope="module")
def served(db_url, auth_server, tmp_path_factory) -> Iterator[int]:
    """`verity serve` (uvicorn) configured by environment variables only; yields its port."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITY_")}
    env.update(
        {
            "DATABASE_URL": db_url,
            "VERITY_DATA_DIR": str(workdir),
            "VERITY_ENVIRONMENT": "test",
            "VERITY_LOG_LEVEL": "WARNING",
            "VERITY_AUTH__ISSUER": auth_server.issuer,
            "VERITY_AUTH__AUDIENCE": auth_server.api_audience,
            "VERITY_SERVER__MAX_REQUEST_BYTES": str(LIMIT),
        }
    )
    log = workdir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_live(port, proc, log)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_live(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """uvicorn binds only after the lifespan (token validator, models) has started."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"verity serve not live in time:\n{log.read_text()[-3000:]}")


@dataclass
class Upload:
    status: int
    body: dict[str, Any]
    sent_before_answer: int  # body bytes the client had written when the answer was complete
    closed: bool  # the server then closed the connection instead of reading the rest


def chunked_upload(port: int, path: str, headers: dict[str, str], cap: int) -> Upload:
    """Send a chunked multipart upload of up to `cap` bytes while reading the answer."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in {**UPLOAD_HEADERS, **headers}.items()
    )
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    frame = f"{CHUNK:x}\r\n".encode() + b"\0" * CHUNK + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    pending, sent, got = b"", 0, b""
    answered_at: int | None = None
    closed = False
    deadline = time.monotonic() + 30
    try:
        sock.sendall(head.encode() + b"\r\n" + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        sock.setblocking(False)
        while time.monotonic() < deadline and not closed:
            sending = answered_at is None and bool(pending or sent < cap)
            readable, writable, _ = select.select([sock], [sock] if sending else [], [], 0.5)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                closed = not data
                got += data
                if answered_at is None and _complete(got):
                    answered_at = sent
                    deadline = min(deadline, time.monotonic() + 5)  # now only wait for close
            if writable:
                if not pending:
                    pending, sent = frame, sent + CHUNK
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    pending, sent = b"", cap  # closed by the server; read what it said
    finally:
        sock.close()
    assert answered_at is not None, f"no complete answer within 30 s: {got[:300]!r}"
    header, _, body = got.partition(b"\r\n\r\n")
    return Upload(int(header.split()[1]), json.loads(body), answered_at, closed)


def _complete(got: bytes) -> bool:
    header, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in header.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def test_real_socket_chunked_upload_over_the_limit_is_413_while_the_client_sends(
    served, auth_server
):
    token = bearer(auth_server, "system/Library.cruds")
    upload = chunked_upload(served, "/v1/identify", token, CAP)
    assert upload.status == 413 and upload.body["code"] == "VERITY-4130", upload.body
    assert upload.sent_before_answer < CAP // 2, upload  # answered while the client sent
    assert upload.closed


def test_real_socket_upload_without_token_is_401_while_the_client_sends(served):
    upload = chunked_upload(served, "/v1/identify", {}, CAP)
    assert upload.status == 401 and upload.body["code"] == "VERITY-4010", upload.body
    assert upload.sent_before_answer < CAP // 2, upload
    assert upload.closed
