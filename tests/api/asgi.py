"""Drive an ASGI app with a streamed request body and count what the app pulls from `receive`.

httpx's ASGITransport hands the app the whole body at once; these tests need the framing of a
chunked upload (no Content-Length) and the number of bytes the app asked for before it answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BOUNDARY = "verity-test-boundary"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    pulled: int  # body bytes the app took from `receive` before the call ended

    def json(self) -> Any:
        return json.loads(self.body)


def multipart_upload(
    field: str, head: bytes, total: int, chunk: int = 64 * 1024
) -> Iterator[bytes]:
    """One multipart file part of `total` bytes (starting with `head`), in chunks, unterminated
    until the end so that a parser must read it all."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    sent = 0
    while sent < total:
        piece = head[sent : sent + chunk] if sent < len(head) else b"\0" * chunk
        piece = piece[: total - sent]
        sent += len(piece)
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


UPLOAD_HEADERS = {
    "content-type": f"multipart/form-data; boundary={BOUNDARY}",
    "transfer-encoding": "chunked",
}


async def call(
    app: Any,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: Iterator[bytes] | None = None,
) -> Answer:
    """One request through the app; the body is offered message by message, as a server would."""
    chunks = body if body is not None else iter(())
    pulled = 0
    pending = next(chunks, None)
    status = 0
    out_headers: dict[str, str] = {}
    out = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal pending, pulled
        if pending is None:
            return {"type": "http.disconnect"}
        piece, pending = pending, next(chunks, None)
        pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": pending is not None}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            out.extend(message.get("body", b""))

    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        + [(b"host", b"verity.test")],
        "client": ("127.0.0.1", 50000),
        "server": ("verity.test", 80),
    }
    await app(scope, receive, send)
    return Answer(status, out_headers, bytes(out), pulled)
