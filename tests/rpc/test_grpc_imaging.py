"""WatchImagingVerification over a real channel: a study in Orthanc, its resources on the FHIR
server, a job queued over REST and run by the app's worker, its progress streamed until done
(or failed), the final message carrying the recorded result."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from service.rpc.gen.verity.v1 import imaging_pb2 as pb
from tests.rpc.conftest import scoped
from tests.rpc.test_grpc_pills import assert_problem
from tests.workflows.test_imaging_e2e import EXPECTED, STUDIES, Ehr

CASE = "dev-013"  # 9 slices listed, 7 in the PACS: STUDY_INCOMPLETE


@pytest.fixture(scope="module")
def study_ehr(fhir_server: Any, orthanc: Any) -> Ehr:
    orthanc.stow(sorted((STUDIES / CASE / "dicom").glob("*.dcm")))
    return Ehr(fhir_server)


async def _watch(imaging: Any, job_id: str, md: Any) -> list[pb.ImagingVerificationUpdate]:
    call = imaging.WatchImagingVerification(
        pb.WatchImagingVerificationRequest(id=job_id), metadata=md, timeout=120
    )
    return [u async for u in call]


async def test_a_job_is_streamed_until_done(imaging, md, rpc_app, study_ehr, orthanc):
    study = study_ehr.seed(CASE, address=orthanc.base_url)
    job = (await rpc_app.post("/v1/imaging-verifications", json={"imaging_study": study})).json()
    updates = await _watch(imaging, job["id"], md)
    assert updates[-1].state == "done", updates[-1]
    assert len(updates) >= 2 and all(u.id == job["id"] for u in updates)
    assert all(u.state in ("queued", "running") for u in updates[:-1])
    assert len({u.SerializeToString(deterministic=True) for u in updates}) == len(updates)
    checked = [u.progress.instances_checked for u in updates]
    assert checked == sorted(checked)  # progress only moves forward
    last = updates[-1]
    assert last.progress.instances_found == last.progress.instances_checked > 0
    assert last.progress.instances_expected == 9
    assert set(last.findings) == EXPECTED[CASE] and last.outcome
    assert last.result["study_ref"] == study
    rest = (await rpc_app.get(f"/v1/imaging-verifications/{job['id']}")).json()
    assert (rest["outcome"], rest["findings"]) == (last.outcome, list(last.findings))
    # A finished job: one message, at once.
    again = await _watch(imaging, job["id"], md)
    assert [u.state for u in again] == ["done"]


async def test_a_failed_job_streams_its_error(imaging, md, rpc_app, study_ehr, orthanc):
    study = study_ehr.seed("dev-016", address=orthanc.base_url, study_uid="2.25.99887766554433")
    job = (await rpc_app.post("/v1/imaging-verifications", json={"imaging_study": study})).json()
    last = (await _watch(imaging, job["id"], md))[-1]
    assert last.state == "failed"
    assert (last.error.code, last.error.retryable) == ("VERITY-4402", False)
    assert not last.HasField("result")


async def test_unknown_job_and_missing_scope(imaging, md, auth_server):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _watch(imaging, "00000000-0000-0000-0000-000000000000", md)
    assert_problem(err.value, "VERITY-4202")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _watch(imaging, "anything", scoped(auth_server, "system/Verification.c"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert_problem(err.value, "VERITY-4030")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _watch(imaging, "anything", ())
    assert_problem(err.value, "VERITY-4010")
