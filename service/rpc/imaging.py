"""verity.v1.Imaging: an imaging job's state and progress, streamed as it changes, from the
same job rows and workflow (`job_with_result`) that GET /v1/imaging-verifications/{id} reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from service.auth.tokens import Principal
from service.rpc.calls import Calls, Context
from service.rpc.gen.verity.v1 import imaging_pb2 as pb
from service.rpc.gen.verity.v1 import imaging_pb2_grpc
from service.rpc.messages import required, to_struct
from service.store.jobs import JobRow
from service.workflows.imaging.jobs import job_with_result

FINAL_STATES = frozenset({"done", "failed"})
_PROGRESS = tuple(pb.ImagingProgress.DESCRIPTOR.fields_by_name)


def update_of(job: JobRow, result: dict[str, Any] | None) -> pb.ImagingVerificationUpdate:
    """One job row (and its recorded result once done) as a stream message."""
    progress = {k: int(v) for k, v in (job.progress or {}).items() if k in _PROGRESS}
    error = job.error or {}
    return pb.ImagingVerificationUpdate(
        id=job.id, state=job.state, attempts=job.attempts,
        progress=pb.ImagingProgress(**progress), outcome=job.outcome or "",
        findings=list(job.findings or []),
        error=pb.ImagingJobError(
            code=str(error.get("code", "")), title=str(error.get("title", "")),
            detail=str(error.get("detail", "")), retryable=bool(error.get("retryable")),
        ) if job.error and job.state == "failed" else None,
        result=to_struct(result) if result is not None else None,
    )  # fmt: skip


class ImagingServicer(imaging_pb2_grpc.ImagingServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.backend = calls.backend

    async def WatchImagingVerification(
        self, request: pb.WatchImagingVerificationRequest, context: Context
    ) -> AsyncIterator[pb.ImagingVerificationUpdate]:
        cfg = self.backend.settings.grpc

        async def work(_: Principal) -> AsyncIterator[pb.ImagingVerificationUpdate]:
            job_id = required(request.id, "id", 64)
            last: pb.ImagingVerificationUpdate | None = None
            while True:
                async with self.backend.connect() as conn:  # held for one read only
                    job, result = await job_with_result(conn, job_id)
                update = update_of(job, result)
                if update != last:
                    yield update
                    last = update
                if job.state in FINAL_STATES:
                    return
                await asyncio.sleep(cfg.watch_poll_s)

        updates = self.calls.stream(
            context, "WatchImagingVerification", ("Verification.rs",), work, cap_s=cfg.watch_max_s
        )
        async for update in updates:
            yield update
