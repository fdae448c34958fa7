"""Problem codes -> gRPC status codes, and the rich error model (google.rpc.ErrorInfo).

The status is derived from the HTTP status of each catalog entry (google/rpc/code.proto's HTTP
mapping), with a few codes named where a gRPC client should act differently:

    400, 415, 422, 413   INVALID_ARGUMENT  fix the request (413 too: an oversized image is the
                                           argument's fault, and RESOURCE_EXHAUSTED invites
                                           retries; gRPC's own message-size limit still answers
                                           RESOURCE_EXHAUSTED, before Verity sees the call)
    401                  UNAUTHENTICATED
    403                  PERMISSION_DENIED
    404, 410             NOT_FOUND
    405                  UNIMPLEMENTED
    409                  ALREADY_EXISTS    a product id, or an idempotency key already used
    500                  INTERNAL
    502, 503 retryable   UNAVAILABLE       the only code gRPC retry policies retry by default
    503 not retryable    FAILED_PRECONDITION  Verity is not configured for this call
    502 not retryable    INTERNAL          an upstream refused what Verity built or its login
    named below          FAILED_PRECONDITION  the referenced order, study or product is not in
                                           a state that can be verified

Every status carries ErrorInfo(reason=<VERITY-code>, domain="verity", metadata: retryable,
and the problem's simple extra members such as limit_bytes or required_scopes).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc.error_details_pb2 import ErrorInfo
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status

from service.errors import VerityError

DOMAIN = "verity"
_C = grpc.StatusCode
_BY_HTTP: dict[int, grpc.StatusCode] = {
    400: _C.INVALID_ARGUMENT, 401: _C.UNAUTHENTICATED, 403: _C.PERMISSION_DENIED,
    404: _C.NOT_FOUND, 405: _C.UNIMPLEMENTED, 409: _C.ALREADY_EXISTS, 410: _C.NOT_FOUND,
    413: _C.INVALID_ARGUMENT, 415: _C.INVALID_ARGUMENT, 422: _C.INVALID_ARGUMENT,
    500: _C.INTERNAL,
}  # fmt: skip
_BY_CODE: dict[str, grpc.StatusCode] = {
    "VERITY-4203": _C.FAILED_PRECONDITION,  # product without reference images
    "VERITY-4304": _C.FAILED_PRECONDITION,  # order that says nothing to verify against
    "VERITY-4305": _C.FAILED_PRECONDITION,  # ImagingStudy without UID or subject
    "VERITY-4403": _C.FAILED_PRECONDITION,  # study on a PACS the hospital did not allow
    "VERITY-4404": _C.FAILED_PRECONDITION,  # study with no PACS to read it from
}
_HIDDEN_EXTRAS = frozenset({"www_authenticate", "retry_after"})


def grpc_code(code: str, http_status: int, retryable: bool) -> grpc.StatusCode:
    """The gRPC status of a catalog entry; KeyError for an HTTP status the table lacks."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if http_status in (502, 503):
        if retryable:
            return _C.UNAVAILABLE
        return _C.FAILED_PRECONDITION if http_status == 503 else _C.INTERNAL
    return _BY_HTTP[http_status]


def code_of(exc: VerityError) -> grpc.StatusCode:
    return grpc_code(exc.code, exc.status, exc.retryable)


def _metadata_value(value: Any) -> str | None:
    """A problem's extra member as ErrorInfo metadata text (nested structures are left out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str | int) for v in value):
        return " ".join(str(v) for v in value)
    return None


def rich_status(exc: VerityError) -> grpc.Status:
    """The status with its ErrorInfo detail, for `context.abort_with_status`."""
    metadata = {"retryable": "true" if exc.retryable else "false"}
    for key, value in exc.extra.items():
        text = _metadata_value(value)
        if key not in _HIDDEN_EXTRAS and text is not None:
            metadata[key] = text
    info = ErrorInfo(reason=exc.code, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    code = code_of(exc)
    proto = Status(code=code.value[0], message=exc.detail, details=[detail])
    return rpc_status.to_status(proto)


def error_info(status: Status | None) -> ErrorInfo | None:
    """The ErrorInfo of a status read with `rpc_status.from_call` (clients, tests)."""
    for detail in status.details if status is not None else ():
        if detail.Is(ErrorInfo.DESCRIPTOR):
            info = ErrorInfo()
            detail.Unpack(info)
            return info
    return None
