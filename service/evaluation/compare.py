"""Model comparison (`verity models compare {pills|studies} DIR`): the evaluation protocol of
the domain once per model cascade, each in a fresh subprocess so that its peak memory and CPU
time are its own, side by side, so that choosing a model is a measured decision.

A cascade is a list of model card ids, first first. For studies they are the imaging
embedders (`imaging.content.models`); for pills, the embedders (`models.embedder` then
`models.cascade`) and at most one head (a card with `applies_to`), else no head.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from service.config import Settings, load_settings
from service.errors import DatasetInvalid, InternalError
from service.models.cards import all_cards

Kind = Literal["pills", "studies"]
PIXEL_CODES = ("CONTENT_MISMATCH", "DUPLICATE_IMAGE")
# A whole protocol run of one cascade; the dev studies take about 20 s, the pills a few minutes.
DEFAULT_TIMEOUT_S = 1800.0


def default_cascades(kind: Kind, settings: Settings) -> list[list[str]]:
    """Studies: each configured imaging model alone, then the full cascade. Pills: the
    configured cascade (with its head), and the same without the head."""
    if kind == "studies":
        models = list(settings.imaging.content.models)
        out = [[m] for m in models]
        return out + ([models] if len(models) > 1 else [])
    configured = list(settings.models.embedders)
    head = settings.models.head
    return [[*configured, head], configured] if head else [configured]


def apply_cascade(kind: Kind, settings: Settings, cascade: list[str]) -> Settings:
    """The settings under which one cascade is evaluated (everything else as configured)."""
    if not cascade:
        raise DatasetInvalid("an empty model cascade")
    cards = {c.id: c for c in all_cards(settings.models.dir)}
    unknown = [m for m in cascade if m not in cards]
    if unknown:
        raise DatasetInvalid(f"no model card for {', '.join(unknown)} (known: {sorted(cards)})")
    if kind == "studies":
        content = settings.imaging.content.model_copy(update={"models": cascade, "enabled": True})
        return settings.model_copy(
            update={"imaging": settings.imaging.model_copy(update={"content": content})}
        )
    heads = [m for m in cascade if cards[m].raw.get("applies_to")]
    embedders = [m for m in cascade if m not in heads]
    if len(heads) > 1 or not embedders:
        raise DatasetInvalid("a pill cascade is one or more embedders and at most one head")
    models = settings.models.model_copy(
        update={
            "embedder": embedders[0],
            "cascade": embedders[1:],
            "head": heads[0] if heads else None,
        }
    )
    return settings.model_copy(update={"models": models})


def _usage() -> tuple[float, float]:
    """(CPU seconds of this process so far, peak RSS in MB): Linux reports ru_maxrss in KiB."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def protocol_images(kind: Kind, dataset: Path) -> int:
    """Images the protocol reads: DICOM instances of the archive and the cases (studies),
    enrolment and query photos (pills)."""
    if kind == "studies":
        from service.evaluation.studies import archive_folders, read_cases

        folders = [*archive_folders(dataset), *(c.folder for c in read_cases(dataset))]
        return sum(1 for f in folders for _ in (f / "dicom").glob("*.dcm"))
    from service.evaluation.pills import read_dataset

    return sum(len(d.references) + len(d.queries) for d in read_dataset(dataset))


async def _evaluate(kind: Kind, dataset: Path, settings: Settings) -> dict[str, Any]:
    if kind == "studies":
        from service.evaluation.studies import evaluate_studies

        return await evaluate_studies(dataset, settings, details=False)
    from service.evaluation.pills import evaluate_pills

    return await evaluate_pills(dataset, settings, details=False)


def measure(kind: Kind, dataset: Path, cascade: list[str], settings: Settings) -> dict[str, Any]:
    """Run the protocol of one cascade in this process and add its cost (call in a fresh
    process: peak memory is the process's high-water mark)."""
    settings = apply_cascade(kind, settings, cascade)
    cpu0, _ = _usage()
    wall0 = time.perf_counter()
    result = asyncio.run(_evaluate(kind, dataset, settings))
    cpu1, peak_mb = _usage()
    images = protocol_images(kind, dataset)
    cpu = cpu1 - cpu0
    return {
        "cascade": cascade,
        **summary(kind, result),
        "images": images,
        "wall_s": round(time.perf_counter() - wall0, 1),
        "cpu_s": round(cpu, 1),
        "cpu_s_per_1000_images": round(cpu / images * 1000, 1) if images else None,
        "peak_mb": round(peak_mb, 0),
    }


def summary(kind: Kind, result: dict[str, Any]) -> dict[str, Any]:
    """The figures that are compared, from one protocol result."""
    if kind == "studies":
        per_code = result.get("per_code", {})
        return {
            **{f"recall_{c}": per_code.get(c, {}).get("recall") for c in PIXEL_CODES},
            "clean_pass_rate": result["clean_pass_rate"],
            "exact_rate": result["exact_rate"],
            "uncertain_rate": result["uncertain_rate"],
            "tier_share": result.get("tier_share", {}),
            "p50_ms": result["p50_ms"],
            "p95_ms": result["p95_ms"],
            "errors": result["errors"],
        }
    keys = ("top1", "top5", "true_accept_rate", "false_accept_rate", "uncertain_rate",
            "p50_ms", "p95_ms", "errors")  # fmt: skip
    return {k: result[k] for k in keys}


def run_in_subprocess(
    kind: Kind, dataset: Path, cascade: list[str], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """`measure` in a fresh interpreter (same code, same environment); its JSON result."""
    cmd = [
        sys.executable,
        "-m",
        "service.evaluation.compare",
        kind,
        str(dataset),
        ",".join(cascade),
    ]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired:
        raise InternalError(
            f"the {kind} protocol of {cascade} took over {timeout_s:.0f} s"
        ) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-1:])
        raise InternalError(f"the {kind} protocol of {cascade} failed ({done.returncode}): {tail}")
    return dict(json.loads(lines[-1]))


def compare(
    kind: Kind,
    dataset: Path,
    cascades: list[list[str]],
    settings: Settings,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """One row per cascade, in the given order; each cascade checked before any run."""
    if not dataset.is_dir():
        raise DatasetInvalid(f"{dataset} is not a folder")
    for cascade in cascades:
        apply_cascade(kind, settings, cascade)
    return [run_in_subprocess(kind, dataset, c, timeout_s=timeout_s) for c in cascades]


def _main(argv: list[str]) -> int:
    """Child entry: KIND DATASET MODELS (comma-separated); prints one JSON line."""
    kind, dataset, models = argv
    if kind not in ("pills", "studies"):
        raise SystemExit(f"unknown kind {kind!r}")
    row = measure(kind, Path(dataset), models.split(","), load_settings())  # type: ignore[arg-type]
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
