"""Request id, body-size limit, access log and HTTP metrics as one pure ASGI middleware.

The body limit holds whatever the framing: a declared Content-Length over the limit is refused
before the app runs, and the bytes of every body (chunked included) are counted as the app
pulls them from `receive`; the first message past the limit raises a 413 inside the app, so
nothing downstream sees a truncated body. A response sent before the body was read in full
closes the connection, so the server stops reading an upload it has already refused.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import problem_response
from service.errors import InternalError, PayloadTooLarge, VerityError
from service.logs import request_id_var
from service.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger("verity.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _route_template(scope: Scope) -> str:
    """The matched route's path template (set by the router), so metrics never carry ids."""
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        has_body = b"transfer-encoding" in headers or bool(declared)
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 500
        started = False
        received = 0
        body_read = False
        over_limit = False
        too_large = f"request body over {self.max_body_bytes} bytes"

        async def counting_receive() -> Message:
            nonlocal received, body_read, over_limit
            if over_limit:
                raise HTTPException(413, too_large)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_read = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    over_limit = True
                    raise HTTPException(413, too_large)  # the app's handler answers 4130
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                extra = [(b"x-request-id", rid.encode())]
                if has_body and not body_read:
                    extra.append((b"connection", b"close"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            if declared is not None and declared > self.max_body_bytes:
                response = problem_response(PayloadTooLarge(too_large), Request(scope))
                await response(scope, receive, send_wrapper)
            else:
                await self.app(scope, counting_receive, send_wrapper)
        except Exception as exc:
            # Handled here, not in Starlette's outermost handler, so the problem keeps its
            # request id. Internals go to the log only. The limit's own 413 gets here when it
            # was raised where the app does not handle errors (a body streamed outside a route).
            error: VerityError
            if over_limit and isinstance(exc, HTTPException) and exc.status_code == 413:
                error = PayloadTooLarge(too_large)
            else:
                log.error("unhandled error", exc_info=exc)
                error = InternalError("an unexpected error occurred; see server log")
            if not started:
                await problem_response(error, Request(scope))(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "ms": round(elapsed * 1000, 1),
                },
            )
            request_id_var.reset(token)
