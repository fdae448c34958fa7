"""Every problem code of the catalog has a gRPC status, documented in docs/errors.md, and a
refusal carries the code and `retryable` in google.rpc.ErrorInfo."""

from __future__ import annotations

import grpc
import pytest
from grpc_status import rpc_status

from service.config import ConfigError, GrpcSettings, load_settings
from service.errors import (
    DatabaseUnavailable,
    ImageTooLarge,
    InsufficientScope,
    Unauthenticated,
    catalog,
)
from service.rpc.status import error_info, grpc_code, rich_status
from tests.conftest import REPO_ROOT

C = grpc.StatusCode


def test_every_catalog_code_maps_and_the_docs_show_it():
    docs = (REPO_ROOT / "docs" / "errors.md").read_text()
    for e in catalog():
        code = grpc_code(e.code, e.status, e.retryable)  # KeyError: an HTTP status not mapped
        assert code != C.OK and code != C.UNKNOWN
        assert (code == C.UNAVAILABLE) == (e.retryable and e.status in (502, 503)), e
        if e.code.startswith("VERITY-4"):
            assert code not in (C.UNAVAILABLE, C.INTERNAL, C.RESOURCE_EXHAUSTED), e
        assert f"| {e.code} | {e.status} | {code.name} |" in docs, f"{e.code} row in docs/errors.md"


@pytest.mark.parametrize(
    "code,expected",
    [
        ("VERITY-4000", C.INVALID_ARGUMENT), ("VERITY-4010", C.UNAUTHENTICATED),
        ("VERITY-4030", C.PERMISSION_DENIED), ("VERITY-4102", C.INVALID_ARGUMENT),
        ("VERITY-4200", C.NOT_FOUND), ("VERITY-4201", C.ALREADY_EXISTS),
        ("VERITY-4202", C.NOT_FOUND), ("VERITY-4301", C.NOT_FOUND),
        ("VERITY-4090", C.ALREADY_EXISTS), ("VERITY-5000", C.INTERNAL),
        ("VERITY-5020", C.UNAVAILABLE), ("VERITY-5023", C.UNAVAILABLE),
        ("VERITY-5030", C.UNAVAILABLE), ("VERITY-5031", C.UNAVAILABLE),
        ("VERITY-5022", C.INTERNAL), ("VERITY-5032", C.FAILED_PRECONDITION),
    ],
)  # fmt: skip
def test_named_mappings(code, expected):
    entry = next(e for e in catalog() if e.code == code)
    assert grpc_code(entry.code, entry.status, entry.retryable) == expected


def test_rich_status_carries_code_retryable_and_simple_members():
    status = rich_status(ImageTooLarge("photo 0 is over 10 bytes", limit_bytes=10))
    assert status.code == C.INVALID_ARGUMENT and status.details == "photo 0 is over 10 bytes"
    proto = rpc_status.status_pb2.Status.FromString(
        dict(status.trailing_metadata)["grpc-status-details-bin"]
    )
    info = error_info(proto)
    assert (info.reason, info.domain) == ("VERITY-4102", "verity")
    assert dict(info.metadata) == {"retryable": "false", "limit_bytes": "10"}
    retry = error_info(_proto(rich_status(DatabaseUnavailable())))
    assert retry.metadata["retryable"] == "true"
    scope = error_info(
        _proto(
            rich_status(
                InsufficientScope("x", required_scopes=["Library.rs"], www_authenticate="Bearer")
            )
        )
    )
    assert dict(scope.metadata) == {"retryable": "false", "required_scopes": "Library.rs"}
    assert (
        error_info(_proto(rich_status(Unauthenticated("x", www_authenticate="Bearer")))).reason
        == "VERITY-4010"
    )


def _proto(status: grpc.Status):
    return rpc_status.status_pb2.Status.FromString(
        dict(status.trailing_metadata)["grpc-status-details-bin"]
    )


def test_half_a_tls_configuration_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="TLS_CERT_FILE and VERITY_GRPC__TLS_KEY_FILE"):
        load_settings(grpc={"port": 1, "tls_cert_file": str(tmp_path / "cert.pem")})
    assert GrpcSettings().port is None  # off unless asked for
    assert not GrpcSettings(port=5).tls
