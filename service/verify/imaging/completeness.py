"""Is all of the study there: what the PACS holds against what the ImagingStudy lists, and
missing slices inside a cross-sectional series. Pure; no I/O."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from service.verify.imaging.compare import result
from service.verify.imaging.headers import InstanceHeader
from service.verify.imaging.results import CheckResult, FindingCode, Outcome
from service.verify.imaging.study import StudyOrder

# A step between slices numbered n and n+k (k > 1) is a missing slice when the distance along
# the slice normal exceeds this many typical steps: one missing slice doubles the distance.
JUMP_FACTOR = 1.5
MIN_SPACING_MM = 1e-3  # slices closer than this share one position: no spacing to learn from


def incomplete_check(order: StudyOrder, headers: Sequence[InstanceHeader]) -> CheckResult:
    """The PACS must hold every series and instance the ImagingStudy lists, and as many."""
    code = FindingCode.STUDY_INCOMPLETE
    listed_series = order.number_of_series or len(order.series) or None
    listed_instances = order.number_of_instances or (
        sum(s.number_of_instances or len(s.instance_uids) for s in order.series) or None
    )
    if listed_series is None and listed_instances is None:
        return result(code, Outcome.NOT_APPLICABLE, "The ImagingStudy lists no series.")
    series_found = {h.series_uid for h in headers}
    sops_found = {h.sop_uid for h in headers}
    per_series = Counter(h.series_uid for h in {h.sop_uid: h for h in headers}.values())
    missing_series = [s for s in order.series if s.uid and s.uid not in series_found]
    missing = [u for s in order.series for u in s.instance_uids if u not in sops_found]
    short = [
        s.uid for s in order.series
        if s.uid in series_found and not s.instance_uids
        and (s.number_of_instances or 0) > per_series[s.uid]
    ]  # fmt: skip
    fewer = (listed_series or 0) > len(series_found) or (listed_instances or 0) > len(sops_found)
    found = [f"{len(series_found)} series", f"{len(sops_found)} instances"]
    expected = [f"{listed_series or '?'} series", f"{listed_instances or '?'} instances"]
    if not (missing_series or missing or short or fewer):
        summary = "The PACS holds every series and instance the ImagingStudy lists."
        return result(code, Outcome.PASSED, summary, dicom=found, expected=expected)
    summary = (
        f"The PACS holds {len(series_found)} series and {len(sops_found)} instances of the"
        f" {expected[0]} and {expected[1]} the ImagingStudy lists"
        f" ({len(missing_series)} series and {len(missing)} listed instances missing)."
    )
    return result(code, Outcome.FAILED, summary, dicom=found, expected=expected, instances=missing,
                  missing_series=[s.uid for s in missing_series], missing_instances=len(missing),
                  short_series=short)  # fmt: skip


@dataclass(frozen=True)
class _Slice:
    number: int
    along: float  # position along the slice normal, mm
    sop_uid: str


def _normal(orientation: tuple[float, ...]) -> tuple[float, float, float] | None:
    """The unit slice normal (row x column direction cosines), None if degenerate."""
    r, c = orientation[:3], orientation[3:6]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    length = sum(v * v for v in n) ** 0.5
    return (n[0] / length, n[1] / length, n[2] / length) if length > 0.5 else None


def _stacks(headers: Sequence[InstanceHeader]) -> dict[tuple[str, tuple[float, ...]], list[_Slice]]:
    """Single-frame slices with geometry, grouped by series and slice orientation."""
    stacks: dict[tuple[str, tuple[float, ...]], list[_Slice]] = defaultdict(list)
    for h in {h.sop_uid: h for h in headers}.values():
        if h.frames != 1 or h.instance_number is None or not h.position or not h.orientation:
            continue
        normal = _normal(h.orientation)
        if normal is None:
            continue
        along = sum(p * n for p, n in zip(h.position, normal, strict=True))
        key = (h.series_uid, tuple(round(v, 2) for v in normal))
        stacks[key].append(_Slice(h.instance_number, along, h.sop_uid))
    return stacks


def _gaps(stack: list[_Slice]) -> tuple[float, list[tuple[_Slice, _Slice]]] | None:
    """The typical spacing and the numbering gaps that jump in position; None: unknown."""
    ordered = sorted(stack, key=lambda s: s.number)
    if len({s.number for s in ordered}) != len(ordered):
        return None  # repeated InstanceNumbers (echoes, phases): the numbering says nothing
    steps = list(zip(ordered, ordered[1:], strict=False))
    unit = [abs(b.along - a.along) for a, b in steps if b.number - a.number == 1]
    typical = median(unit) if unit else 0.0
    if typical < MIN_SPACING_MM:
        return None
    jumps = [
        (a, b) for a, b in steps
        if b.number - a.number > 1 and abs(b.along - a.along) > JUMP_FACTOR * typical
    ]  # fmt: skip
    return typical, jumps


def slice_gap_check(headers: Sequence[InstanceHeader]) -> CheckResult:
    """A single-frame cross-sectional series misses a slice: an InstanceNumber gap together
    with a jump of the position along the slice normal beyond the series' typical spacing."""
    code = FindingCode.SLICE_GAP
    found = {key: _gaps(stack) for key, stack in _stacks(headers).items()}
    checked = {key: g for key, g in found.items() if g is not None}
    if not checked:
        summary = "No single-frame cross-sectional series with consecutive slices to check."
        return result(code, Outcome.NOT_APPLICABLE, summary)
    gaps = [(typical, a, b) for typical, jumps in checked.values() for a, b in jumps]
    if not gaps:
        summary = f"No missing slice in {len(checked)} cross-sectional series."
        return result(code, Outcome.PASSED, summary, series=len(checked))
    shown = [
        f"InstanceNumber {a.number} -> {b.number}: {abs(b.along - a.along):.2f} mm"
        f" (typical {typical:.2f} mm)"
        for typical, a, b in gaps
    ]
    summary = f"{len(gaps)} slice gap(s): InstanceNumber skips with a jump in slice position."
    ids = [uid for _, a, b in gaps for uid in (a.sop_uid, b.sop_uid)]
    return result(code, Outcome.FAILED, summary, dicom=shown, instances=ids, series=len(checked))
