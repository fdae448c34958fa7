"""What every RPC goes through, in one place: request id, bearer token and scopes (the REST
validator and scope rule), the client's deadline, problem codes as rich statuses, the access log
and the Prometheus metrics. Servicers only turn messages into workflow calls and back."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import grpc
import psycopg

from service.auth.scopes import missing_scopes
from service.auth.tokens import ANONYMOUS, Principal, TokenValidator, bearer_from_header
from service.config import Settings
from service.errors import (
    AuthNotConfigured,
    ClientError,
    InsufficientScope,
    InternalError,
    ModelNotLoaded,
    Unauthenticated,
    VerityError,
)
from service.logs import request_id_var
from service.metrics import GRPC_LATENCY, GRPC_REQUESTS, PROBLEMS
from service.rpc.status import code_of, rich_status
from service.store.pool import pooled
from service.workflows.pills.service import PillService
from service.workflows.record import Caller

log = logging.getLogger("verity.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]


class AppState(Protocol):
    """The app's long-lived resources, owned by the lifespan (service/main.py)."""

    settings: Settings
    db: Any
    pills: PillService | None
    fhir: Any
    token_validator: TokenValidator


class Backend:
    """The servicers' view of the app state: read at call time, so a reload is seen."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def pills(self) -> PillService:
        if self.state.pills is None:
            raise ModelNotLoaded("the pill models are not loaded")
        return self.state.pills

    def connect(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection]:
        return pooled(self.state.db.pool)


def caller_of(principal: Principal) -> Caller:
    return Caller(principal.subject, principal.client_id, tuple(sorted(principal.scopes)))


async def authenticate(
    validator: TokenValidator | None, metadata: Sequence[tuple[str, Any]], required: Sequence[str]
) -> Principal:
    """The caller of a bearer token in the `authorization` metadata with every scope required."""
    if validator is None:
        raise AuthNotConfigured("no token validator on this app")
    if not validator.enabled:
        return ANONYMOUS
    header = next((str(v) for k, v in metadata if k == "authorization"), "")
    token = bearer_from_header(header)
    if token is None:
        raise Unauthenticated("bearer token required in the authorization metadata")
    principal = await validator.validate(token)
    missing = missing_scopes(principal.scopes, required)
    if missing:
        raise InsufficientScope(f"token lacks scope: {' '.join(missing)}", required_scopes=missing)
    return principal


def time_left(context: Context, cap_s: float | None = None) -> float | None:
    """Seconds until the client's deadline (or `cap_s`, whichever is first); None: no bound."""
    remaining = context.time_remaining()
    if cap_s is not None:
        remaining = cap_s if remaining is None else min(remaining, cap_s)
    return remaining


def _past(context: Context) -> bool:
    remaining = context.time_remaining()
    return remaining is not None and remaining <= 0


def check_deadline(context: Context) -> None:
    """Between two steps: stop before starting the next one once the deadline has passed."""
    if _past(context):
        raise TimeoutError("deadline passed")


def _unexpected(exc: BaseException) -> VerityError:
    """A bug: its traceback in the server log only, the caller gets 5000."""
    log.error("unhandled error", exc_info=exc)
    return InternalError("an unexpected error occurred; see server log")


async def _abort(context: Context, exc: VerityError) -> None:
    """End the call with the problem's status and ErrorInfo (what abort_with_status does)."""
    PROBLEMS.labels(exc.code).inc()
    if not isinstance(exc, ClientError):
        log.warning("rpc failed", extra={"code": exc.code, "error": exc.detail})
    status = rich_status(exc)
    await context.abort(status.code, status.details, status.trailing_metadata)


class Calls:
    """Runs one RPC's work inside the common envelope."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @asynccontextmanager
    async def _envelope(
        self, context: Context, method: str, scopes: Sequence[str], cap_s: float | None
    ) -> AsyncIterator[Principal]:
        metadata = tuple(context.invocation_metadata() or ())
        incoming = next((str(v) for k, v in metadata if k == "x-request-id"), "")
        rid = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        start = time.perf_counter()
        code = "OK"
        deadline = asyncio.timeout(time_left(context, cap_s))
        try:
            await context.send_initial_metadata((("x-request-id", rid),))
            async with deadline:
                validator = getattr(self.backend.state, "token_validator", None)
                yield await authenticate(validator, metadata, scopes)
        except VerityError as exc:
            code = code_of(exc).name
            await _abort(context, exc)
        except TimeoutError as exc:  # ours (the deadline or cap_s), or a bug's
            if deadline.expired() or _past(context):
                code = "DEADLINE_EXCEEDED"
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
            else:
                code = "INTERNAL"
                await _abort(context, _unexpected(exc))
        except asyncio.CancelledError:  # gRPC cancels the work when the client goes or its
            code = "DEADLINE_EXCEEDED" if _past(context) else "CANCELLED"  # deadline passes
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code = "INTERNAL"
            await _abort(context, _unexpected(exc))
        finally:
            elapsed = time.perf_counter() - start
            GRPC_REQUESTS.labels(method, code).inc()
            GRPC_LATENCY.labels(method).observe(elapsed)
            log.info("rpc", extra={"method": method, "code": code, "ms": round(elapsed * 1000, 1)})
            request_id_var.reset(token)

    async def unary(
        self,
        context: Context,
        method: str,
        scopes: Sequence[str],
        work: Callable[[Principal], Awaitable[T]],
    ) -> T:
        """One request, one answer."""
        async with self._envelope(context, method, scopes, None) as principal:
            return await work(principal)
        raise AssertionError("unreachable: the envelope aborts on every failure")

    async def stream(
        self,
        context: Context,
        method: str,
        scopes: Sequence[str],
        work: Callable[[Principal], AsyncIterator[T]],
        *,
        cap_s: float | None = None,
    ) -> AsyncIterator[T]:
        """One request, answers streamed until the work ends (or `cap_s`, or the deadline)."""
        async with self._envelope(context, method, scopes, cap_s) as principal:
            async for item in work(principal):
                yield item
