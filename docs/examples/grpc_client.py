"""Call Verity over gRPC: health, an embedding, and a comparison with a stored product.

    VERITY_TOKEN=$(verity auth dev-token --scope system/Library.rs) \
        python docs/examples/grpc_client.py 127.0.0.1:8421 photo.jpg ndc_00003-4222-16

Needs only `pip install verity` (grpcio and the generated stubs ship with it). Errors print the
stable Verity code and whether a retry can help, from the google.rpc.ErrorInfo detail.
"""

from __future__ import annotations

import json
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from service.rpc.gen.verity.v1 import pills_pb2, pills_pb2_grpc
from service.rpc.status import error_info


def main(target: str, photo: str, product_id: str) -> int:
    metadata = (("authorization", f"Bearer {os.environ['VERITY_TOKEN']}"),)
    with grpc.insecure_channel(target) as channel:  # grpc.secure_channel(...) when TLS is on
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="verity.v1.Pills"), timeout=5
        )
        pills = pills_pb2_grpc.PillsStub(channel)
        image = pills_pb2.Image(data=open(photo, "rb").read(), format="image/jpeg")
        try:
            emb = pills.ExtractEmbedding(
                pills_pb2.ExtractEmbeddingRequest(image=image), metadata=metadata, timeout=30
            )
            cmp = pills.Compare(
                pills_pb2.CompareRequest(image=image, product_id=product_id),
                metadata=metadata, timeout=30,
            )  # fmt: skip
        except grpc.RpcError as err:
            info = error_info(rpc_status.from_call(err))  # type: ignore[arg-type]
            code = info.reason if info else "-"
            retry = info.metadata["retryable"] if info else "-"
            print(f"{err.code().name} {code} retryable={retry}: {err.details()}")  # type: ignore[attr-defined]
            return 1
    print(json.dumps({
        "health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status),
        "dimension": emb.dimension, "model_version": emb.model_version,
        "combined_score": round(cmp.combined_score, 4), "band": pills_pb2.Band.Name(cmp.band),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
