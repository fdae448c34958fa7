"""Every resource kind Verity can write, made by the real builders in service/writeback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from service.config import WritebackSettings
from service.verify.imaging.content import (
    ContentBands,
    Label,
    Reference,
    content_check,
    judge_image,
)
from service.verify.imaging.results import CheckResult, FindingCode, Outcome
from service.verify.pills.results import Finding, Verdict
from service.writeback import bundle
from service.writeback.imaging import imaging_write
from service.writeback.pills import pill_write
from tests.writeback.test_imaging import check, make_study, passed_checks
from tests.writeback.test_pills import ORG, make_verification


def ungated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the builders return what they would queue even where the in-house gate
    (service/writeback/validate.py, tested in tests/writeback) refuses it: here the independent
    engines must see it, so that every failing constraint is listed, not only the first."""
    monkeypatch.setattr(bundle, "refuse_invalid", lambda *args, **kwargs: None)


BANDS = ContentBands(evidence_distance=0.35, temperature=0.05, match_p=0.8, mismatch_p=0.9)
DECLARED = Label("CT", "ABDOMEN")


def content(*nearest: tuple[Label, float], outcome: Outcome) -> CheckResult:
    """A CONTENT_MISMATCH check made by the real rules (issue 12) from the nearest references."""
    refs = [Reference(f"2.25.{n}", f"2.25.{n}.1", label, d) for n, (label, d) in enumerate(nearest)]
    image = judge_image("2.25.99.1", DECLARED, refs, BANDS, "image-embedder@0123abcd")
    made = content_check(DECLARED, [image])
    assert made.outcome is outcome, made
    return made


def _resources(b: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in b["entry"]]


def pill_cases() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Each verdict and finding, with and without an organisation."""
    for settings_name, settings in (("no-org", WritebackSettings()), ("org", ORG)):
        for verdict in Verdict:
            w = pill_write(make_verification(verdict), settings, write_match=True)
            assert w is not None
            yield f"pill-{verdict.value}-{settings_name}", _resources(w.bundle)
        for finding in Finding:
            v = make_verification(Verdict.MATCH, (finding,))
            if finding is Finding.ORDER_INACTIVE:
                v = replace(v, order_status="stopped")
            w = pill_write(v, settings)
            assert w is not None
            yield f"pill-{finding.value}-{settings_name}", _resources(w.bundle)


def imaging_cases() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Clean (one check, many checks), each finding failed, the content check uncertain and
    failed as the pixel rules make it, one not checkable; with and without an organisation."""
    for settings_name, settings in (("no-org", WritebackSettings()), ("org", ORG)):
        yield (
            f"imaging-clean-many-{settings_name}",
            _resources(imaging_write(make_study(), settings).bundle),
        )
        yield (
            f"imaging-clean-one-{settings_name}",
            _resources(imaging_write(make_study(passed_checks()[:1]), settings).bundle),
        )
        for code in FindingCode:
            failed = check(code, Outcome.FAILED, summary=f"{code.value} failed.", dicom=("x",))
            study = make_study([failed, *passed_checks()[1:2]])
            yield (
                f"imaging-{code.value}-{settings_name}",
                _resources(imaging_write(study, settings).bundle),
            )
        head = Label("CT", "HEAD")
        for name, made in (
            ("uncertain", content((head, 0.10), (DECLARED, 0.10), outcome=Outcome.UNCERTAIN)),
            ("failed", content((head, 0.10), (head, 0.12), outcome=Outcome.FAILED)),
        ):
            study = make_study([*passed_checks(), made])
            assert study.outcome == ("UNCERTAIN" if name == "uncertain" else "FAILED")
            yield (
                f"imaging-content-{name}-{settings_name}",
                _resources(imaging_write(study, settings).bundle),
            )
        unchecked = check(
            FindingCode.DUPLICATE_IMAGE, Outcome.COULD_NOT_CHECK, summary="No archive."
        )
        yield (
            f"imaging-not-checked-{settings_name}",
            _resources(imaging_write(make_study([unchecked]), settings).bundle),
        )
