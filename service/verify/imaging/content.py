"""CONTENT_MISMATCH: what the pixels look like, from the nearest labelled references, against
what the header and the order agree the study is (modality, body part). Per image, each
reference within the evidence distance votes for its label with weight exp(-distance / T):
the share of votes for labels incompatible with the declared one is the probability that the
pixels are of something else. Bands as for pills: MATCH / UNCERTAIN (a person looks) /
MISMATCH. An image with no reference near enough is not judged; it never passes as a match.
The physical plausibility of the image (plausibility.py: sizes, matrix, shape) then overrules a
lenient vote: implausible makes the image a MISMATCH, near a limit at least UNCERTAIN;
plausible adds nothing (a plausible size does not show the anatomy), so the vote stands."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from service.verify.imaging.acquisition import modality_family
from service.verify.imaging.bodyparts import REGIONS, related
from service.verify.imaging.compare import result
from service.verify.imaging.plausibility import Plausibility
from service.verify.imaging.plausibility import Verdict as Physical
from service.verify.imaging.results import CheckResult, FindingCode, Outcome

MAX_EVIDENCE = 5  # nearest references shown per image in the evidence


@dataclass(frozen=True)
class Label:
    """What an image is of: DICOM Modality and BodyPartExamined defined term."""

    modality: str
    body_part: str

    def __str__(self) -> str:
        return f"{self.modality} {self.body_part}"


@dataclass(frozen=True)
class Reference:
    """A labelled reference image near a query image."""

    study_uid: str
    sop_uid: str
    label: Label
    distance: float  # cosine distance between the embeddings


@dataclass(frozen=True)
class ContentBands:
    evidence_distance: float  # references farther than this say nothing about the image
    temperature: float  # of the distance-weighted vote
    match_p: float  # P(compatible) at or above this: the image matches
    mismatch_p: float  # P(incompatible) at or above this: the image is of something else


class Verdict(StrEnum):
    MATCH = "MATCH"
    UNCERTAIN = "UNCERTAIN"
    MISMATCH = "MISMATCH"
    NO_EVIDENCE = "NO_EVIDENCE"


@dataclass(frozen=True)
class ImageContent:
    """One image's verdict, the probability behind it and the references that gave it."""

    sop_uid: str
    verdict: Verdict
    p_other: float  # probability that the pixels are of an incompatible label
    shows: Label | None  # the label with most votes
    model: str
    references: tuple[Reference, ...]
    plausibility: Plausibility | None = None
    voted: Verdict | None = None  # the references' verdict, when the physical rules changed it

    def described(self) -> str:
        """What the image shows, for a summary: the physical reason when that decided it."""
        p = self.plausibility
        if p is None or self.voted is None:
            return str(self.shows)
        reasons = [f.reason() for f in p.findings if f.verdict is p.verdict]
        return f"physically {p.verdict.value.lower()}: {'; '.join(reasons)}"


def with_plausibility(image: ImageContent, p: Plausibility) -> ImageContent:
    """The vote's verdict, overruled by the physical rules when they object (module doc)."""
    verdict = image.verdict
    if p.verdict is Physical.IMPLAUSIBLE:
        verdict = Verdict.MISMATCH
    elif p.verdict is Physical.UNCERTAIN and verdict is not Verdict.MISMATCH:
        verdict = Verdict.UNCERTAIN
    voted = image.verdict if verdict is not image.verdict else None
    return replace(image, verdict=verdict, plausibility=p, voted=voted)


def declared_label(modality: str | None, region: str | None) -> Label | None:
    """A label from a Modality and a body region of bodyparts.REGIONS (None: not both known)."""
    if not modality or region not in REGIONS:
        return None
    return Label(modality_family(modality.upper()), region)


def compatible(a: Label, b: Label) -> bool:
    """Same modality family (CR/DX are one) and the same or a containing body region."""
    return modality_family(a.modality) == modality_family(b.modality) and related(
        a.body_part, b.body_part
    )


def judge_image(
    sop_uid: str,
    declared: Label,
    references: Sequence[Reference],
    bands: ContentBands,
    model: str,
) -> ImageContent:
    """The verdict for one image from its nearest labelled references."""
    near = sorted((r for r in references if r.distance <= bands.evidence_distance),
                  key=lambda r: r.distance)  # fmt: skip
    shown = tuple(sorted(references, key=lambda r: r.distance)[:MAX_EVIDENCE])
    if not near:
        return ImageContent(sop_uid, Verdict.NO_EVIDENCE, 0.0, None, model, shown)
    votes: dict[Label, float] = {}
    for r in near:
        votes[r.label] = votes.get(r.label, 0.0) + math.exp(-r.distance / bands.temperature)
    total = sum(votes.values())
    p_other = sum(w for label, w in votes.items() if not compatible(label, declared)) / total
    shows = max(votes, key=lambda label: votes[label])
    if p_other >= bands.mismatch_p:
        verdict = Verdict.MISMATCH
    elif 1.0 - p_other >= bands.match_p:
        verdict = Verdict.MATCH
    else:
        verdict = Verdict.UNCERTAIN
    return ImageContent(sop_uid, verdict, round(p_other, 4), shows, model, shown)


def content_check(declared: Label | None, images: Sequence[ImageContent]) -> CheckResult:
    """The study's CONTENT_MISMATCH check from its judged images."""
    code = FindingCode.CONTENT_MISMATCH
    if declared is None:
        summary = "The header and the order do not agree on a modality and body part to compare."
        return result(code, Outcome.NOT_APPLICABLE, summary)
    evidence: dict[str, Any] = {"images": [_evidence(i) for i in images]}
    judged = [i for i in images if i.verdict is not Verdict.NO_EVIDENCE]
    expected = [str(declared)]
    if not judged:
        summary = (f"No enrolled reference is near enough to any of the {len(images)} images "
                   f"embedded to judge what they show; the content was not judged.")  # fmt: skip
        return result(code, Outcome.NOT_APPLICABLE, summary, expected=expected, **evidence)
    bad = [i for i in judged if i.verdict is Verdict.MISMATCH]
    unsure = [i for i in judged if i.verdict is Verdict.UNCERTAIN]
    shown = [i.described() for i in (bad or unsure or judged)]
    if bad:
        summary = (f"The pixels of {len(bad)} of {len(judged)} judged images are not "
                   f"{declared}: {'; '.join(sorted(set(shown)))}.")  # fmt: skip
        return result(code, Outcome.FAILED, summary, dicom=shown, expected=expected,
                      instances=[i.sop_uid for i in bad], **evidence)  # fmt: skip
    if unsure:
        summary = (f"The pixels of {len(unsure)} of {len(judged)} judged images may not be "
                   f"{declared}: a person should look.")  # fmt: skip
        return result(code, Outcome.UNCERTAIN, summary, dicom=shown, expected=expected,
                      instances=[i.sop_uid for i in unsure], **evidence)  # fmt: skip
    summary = f"The pixels of {len(judged)} judged images look like {declared}."
    return result(code, Outcome.PASSED, summary, dicom=shown, expected=expected, **evidence)


def _evidence(i: ImageContent) -> dict[str, object]:
    p = i.plausibility
    physical = None if p is None else {
        "verdict": p.verdict.value,
        "measured": p.measured,
        "rules": [{"measure": f.measure.value, "value": f.value, "verdict": f.verdict.value,
                   "source": f.source} for f in p.findings],
    }  # fmt: skip
    return {
        "plausibility": physical,
        "voted": i.voted.value if i.voted else None,
        "sop_uid": i.sop_uid,
        "verdict": i.verdict.value,
        "p_other": i.p_other,
        "shows": str(i.shows) if i.shows else None,
        "model": i.model,
        "nearest": [
            {"study_uid": r.study_uid, "label": str(r.label), "distance": round(r.distance, 4)}
            for r in i.references
        ],
    }


@dataclass(frozen=True)
class PriorComparison:
    """One image against the patient's own earlier images and everyone else's."""

    sop_uid: str
    own: float | None  # distance to the nearest image of this patient's earlier studies
    other: float | None  # distance to the nearest image of another patient
    other_study_uid: str | None


def lookalike_check(images: Sequence[PriorComparison], margin: float) -> CheckResult:
    """Possible wrong patient: the patient's own priors are far while another patient's image
    is nearer by more than `margin`. Never a failure: UNCERTAIN, a person decides."""
    code = FindingCode.PATIENT_ID_MISMATCH
    compared = [i for i in images if i.own is not None and i.other is not None]
    if not compared:
        summary = "The patient has no earlier embedded images to compare the pixels with."
        return result(code, Outcome.NOT_APPLICABLE, summary, kind="prior_lookalike")
    odd = [i for i in compared if (i.own or 0.0) - (i.other or 0.0) > margin]
    shown = [
        {"sop_uid": i.sop_uid, "own_prior": round(i.own or 0, 4),
         "other_patient": round(i.other or 0, 4), "other_study_uid": i.other_study_uid}
        for i in compared
    ]  # fmt: skip
    if odd:
        summary = (f"Possible wrong patient: {len(odd)} of {len(compared)} images look more like "
                   "another patient's images than this patient's earlier ones.")  # fmt: skip
        return result(code, Outcome.UNCERTAIN, summary, instances=[i.sop_uid for i in odd],
                      kind="prior_lookalike", images=shown)  # fmt: skip
    summary = f"{len(compared)} images look like this patient's earlier images."
    return result(code, Outcome.PASSED, summary, kind="prior_lookalike", images=shown)
