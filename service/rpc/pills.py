"""verity.v1.Pills: embeddings, comparison, identification and dispense verification, each a
call into the same workflow its REST endpoint uses."""

from __future__ import annotations

from service.auth.tokens import Principal
from service.rpc.calls import Backend, Calls, Context, caller_of, check_deadline
from service.rpc.gen.verity.v1 import pills_pb2 as pb
from service.rpc.gen.verity.v1 import pills_pb2_grpc
from service.rpc.messages import band, image_bytes, optional, required, to_struct
from service.verify.pills.measurements import QueryPill
from service.verify.pills.results import Candidate
from service.workflows.pills.submit import (
    MedicationSubmission,
    check_fhir,
    check_photo_count,
    submit_medication,
)

TOP_CANDIDATES = 5  # as /v1/identify
READ, VERIFY = ("Library.rs",), ("Verification.c",)


class PillsServicer(pills_pb2_grpc.PillsServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.backend: Backend = calls.backend

    async def ExtractEmbedding(
        self, request: pb.ExtractEmbeddingRequest, context: Context
    ) -> pb.ExtractEmbeddingResponse:
        async def work(_: Principal) -> pb.ExtractEmbeddingResponse:
            data = image_bytes(request.image, self.backend.settings.limits, "image")
            pills = self.backend.pills
            vector = await pills.embed_photo(data)
            return pb.ExtractEmbeddingResponse(
                vector=[float(x) for x in vector], dimension=int(vector.shape[0]),
                model=pills.engine.embedder, model_version=pills.model_version,
            )  # fmt: skip

        return await self.calls.unary(context, "ExtractEmbedding", READ, work)

    async def Compare(self, request: pb.CompareRequest, context: Context) -> pb.CompareResponse:
        async def work(_: Principal) -> pb.CompareResponse:
            limits = self.backend.settings.limits
            a = image_bytes(request.image, limits, "image")
            pills = self.backend.pills
            which = request.WhichOneof("reference")
            if which == "product_id":
                product = required(request.product_id, "product_id", 200)
                check_deadline(context)
                cosine, euclid, fused = await pills.compare_product(
                    self.backend.connect, a, product
                )
            else:
                b = image_bytes(request.reference_image, limits, "reference_image")
                check_deadline(context)
                cosine, euclid, fused = await pills.compare(a, b)
            return pb.CompareResponse(
                model_version=pills.model_version, cosine_similarity=round(cosine, 6),
                euclidean_distance=round(euclid, 6), combined_score=fused.score,
                band=band(fused.band), evidence=to_struct(fused.evidence),
            )  # fmt: skip

        return await self.calls.unary(context, "Compare", READ, work)

    async def Identify(self, request: pb.IdentifyRequest, context: Context) -> pb.IdentifyResponse:
        async def work(_: Principal) -> pb.IdentifyResponse:
            data = image_bytes(request.image, self.backend.settings.limits, "image")
            pills = self.backend.pills
            result, ranked = await pills.identify(self.backend.connect, data)
            return pb.IdentifyResponse(
                model_version=pills.model_version,
                pill_count=len(ranked),
                timings_ms={k: round(v, 1) for k, v in result.timings.items()},
                pills=[_pill(r.pill, r.candidates) for r in ranked],
            )

        return await self.calls.unary(context, "Identify", READ, work)

    async def VerifyMedication(
        self, request: pb.VerifyMedicationRequest, context: Context
    ) -> pb.VerifyMedicationResponse:
        async def work(principal: Principal) -> pb.VerifyMedicationResponse:
            settings = self.backend.settings
            fhir = check_fhir(self.backend.state.fhir)
            check_photo_count(len(request.photos), settings.limits)
            submission = MedicationSubmission(
                medication_request=required(request.medication_request, "medication_request"),
                photos=[
                    image_bytes(p, settings.limits, f"photo {i}")
                    for i, p in enumerate(request.photos)
                ],
                medication_dispense=optional(request.medication_dispense, "medication_dispense"),
                patient=optional(request.patient, "patient"),
                idempotency_key=optional(request.idempotency_key, "idempotency_key", 200),
                caller=caller_of(principal),
            )
            check_deadline(context)
            result, created = await submit_medication(
                self.backend.pills, settings, fhir, self.backend.connect, submission
            )
            return pb.VerifyMedicationResponse(
                id=result["id"], verdict=result["verdict"],
                needs_attention=bool(result.get("needs_attention")),
                findings=[str(f) for f in result.get("findings") or []],
                created=created, verification=to_struct(result),
            )  # fmt: skip

        return await self.calls.unary(context, "VerifyMedication", VERIFY, work)


def _pill(pill: QueryPill, candidates: list[Candidate]) -> pb.IdentifiedPill:
    """One pill as /v1/identify shows it (features without the box, top candidates)."""
    box = pill.features.get("bbox")
    return pb.IdentifiedPill(
        index=pill.index,
        bbox=pb.BoundingBox(x=box[0], y=box[1], width=box[2], height=box[3]) if box else None,
        imprint_read=pill.imprint_read or "",
        imprint_confidence=round(pill.imprint_confidence, 3),
        features=to_struct({k: v for k, v in pill.features.items() if k != "bbox"}),
        candidates=[
            pb.Candidate(
                product_id=c.product_id,
                name=c.product.name or "",
                score=c.score,
                band=band(c.band),
                evidence=to_struct(c.evidence),
            )  # fmt: skip
            for c in candidates[:TOP_CANDIDATES]
        ],
    )
