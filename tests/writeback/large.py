"""A write-back larger than one transaction, made by the imaging builder itself: a report of
17 passed checks (its model card + Device + DiagnosticReport + 17 Observations + Provenance:
21 entries), for
the part-splitting tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service.config import WritebackSettings
from service.verify.common import ModelInfo
from service.verify.imaging.results import (
    CheckResult,
    FindingCode,
    ImagingVerification,
    Outcome,
    StudyCounts,
)
from service.writeback.bundle import OutboxWrite
from service.writeback.imaging import imaging_write

CHECKS = 17
_CODES = [c for c in FindingCode if c is not FindingCode.CONTENT_MISMATCH]


def _code(k: int) -> FindingCode:
    return _CODES[k % len(_CODES)]


def large_verification(patient: str, key: str, checks: int = CHECKS) -> ImagingVerification:
    """A verification of `checks` passed checks (codes repeat past the 12 of the vocabulary)."""
    return ImagingVerification(
        id=key,
        created_at=datetime.now(UTC),
        study_ref=f"ImagingStudy/{key}",
        study_uid="2.25.1",
        checks=[
            CheckResult(_code(k), Outcome.PASSED, "moderate", f"Check {k} passed.")
            for k in range(checks)
        ],
        counts=StudyCounts(1, 1, 1, 1, 1, 1),
        patient_ref=patient,
        # a model version of its own: the Device is new to the server, so it can be counted
        models=[ModelInfo("split-test", key)],
    )


def observation_values(key: str, checks: int = CHECKS) -> list[str]:
    """The identifier values the builder gives the Observations (`/2` for a repeated code)."""
    seen: dict[FindingCode, int] = {}
    out = []
    for k in range(checks):
        code = _code(k)
        seen[code] = seen.get(code, 0) + 1
        out.append(f"{key}/check/{code}" + ("" if seen[code] == 1 else f"/{seen[code]}"))
    return out


def large_write(
    patient: str, system: str, key: str | None = None, checks: int = CHECKS
) -> OutboxWrite:
    """The Bundle the builder makes for one report of `checks` Observations (fresh Device)."""
    v = large_verification(patient, key or str(uuid.uuid4()), checks)
    return imaging_write(v, WritebackSettings(identifier_system=system))
