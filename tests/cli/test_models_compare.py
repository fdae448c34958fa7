"""`verity models compare`: each cascade of a protocol runs in its own process over a small real
subset of ../shared/data, and the table has one row of measured figures per cascade."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from service.config import Settings
from service.errors import DatasetInvalid
from service.evaluation.compare import apply_cascade, default_cascades, protocol_images
from tests.cli.conftest import run_verity, subset_dataset
from tests.conftest import SHARED_DATA

STUDY_CASES = ["dev-001", "dev-019", "dev-029"]  # clean, DUPLICATE_IMAGE, CONTENT_MISMATCH
PILL_PRODUCTS = ["ndc_00002-3228-30", "ndc_00003-4222-16", "ndc_00004-0800-85"]


def studies_subset(dest: Path, cases: list[str]) -> Path:
    """A studies dataset with these cases and the whole archive of ../shared/data/studies."""
    src = SHARED_DATA / "studies"
    with (src / "cases.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["case_id"] in cases]
    assert len(rows) == len(cases), "a case is missing from the dataset"
    dest.mkdir(parents=True)
    with (dest / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["case_id", "expected", "note"])
        writer.writeheader()
        writer.writerows(rows)
    (dest / "archive").symlink_to(src / "archive")
    for case in cases:
        (dest / case).symlink_to(src / case)
    return dest


def test_default_cascades_follow_the_settings() -> None:
    settings = Settings()
    assert default_cascades("studies", settings) == [list(settings.imaging.content.models)]
    content = settings.imaging.content.model_copy(update={"models": ["a", "b"]})
    two = settings.model_copy(
        update={"imaging": settings.imaging.model_copy(update={"content": content})}
    )
    assert default_cascades("studies", two) == [["a"], ["b"], ["a", "b"]]
    pills = default_cascades("pills", settings)
    assert pills == [[settings.models.embedder, settings.models.head], [settings.models.embedder]]


def test_a_cascade_of_unknown_or_two_heads_is_refused() -> None:
    settings = Settings()
    with pytest.raises(DatasetInvalid, match="no model card"):
        apply_cascade("studies", settings, ["no-such-model"])
    with pytest.raises(DatasetInvalid, match="at most one head"):
        apply_cascade("pills", settings, ["pill-head-wccn"])
    pills = apply_cascade("pills", settings, ["efficientnet-lite0"])
    assert pills.models.head is None and pills.models.embedder == "efficientnet-lite0"


def test_images_are_counted_through_symlinked_folders(tmp_path: Path) -> None:
    dataset = subset_dataset(tmp_path / "pills", PILL_PRODUCTS)
    photos = [SHARED_DATA / "pills" / p for p in PILL_PRODUCTS]
    assert protocol_images("pills", dataset) == sum(len(list(p.glob("*.jpg"))) for p in photos)


@pytest.mark.slow
def test_compare_studies_on_real_cases(tmp_path: Path) -> None:
    dataset = studies_subset(tmp_path / "studies", STUDY_CASES)
    done = run_verity(["models", "compare", "studies", str(dataset), "--json",
                       "--models", "efficientnet-lite0"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [r["cascade"] for r in rows] == [["efficientnet-lite0"]]
    row = rows[0]
    assert row["recall_DUPLICATE_IMAGE"] == 1.0  # the planted duplicate of the archive
    assert row["clean_pass_rate"] == 1.0
    assert row["errors"] == 0
    assert 0 < row["p50_ms"] <= row["p95_ms"]
    assert row["peak_mb"] > 50 and row["cpu_s"] > 0
    dicom = [SHARED_DATA / "studies" / d for d in [*STUDY_CASES, "archive"]]
    assert row["images"] == sum(len(list(d.rglob("*.dcm"))) for d in dicom) > 0
    assert row["tier_share"]["headers"] == 1.0


@pytest.mark.slow
def test_compare_pills_table_has_a_row_per_cascade(tmp_path: Path) -> None:
    dataset = subset_dataset(tmp_path / "pills", PILL_PRODUCTS)
    done = run_verity(["models", "compare", "pills", str(dataset),
                       "--models", "efficientnet-lite0,pill-head-wccn",
                       "--models", "efficientnet-lite0"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = lines[0].split()
    assert header[:3] == ["cascade", "top1", "top5"] and "CPU_s/1k_img" in header
    body = {line.split()[0] if "+" not in line else "with-head": line for line in lines[1:3]}
    assert set(body) == {"with-head", "efficientnet-lite0"}
    for line in lines[1:3]:
        figures = line.split()[-len(header) + 1 :]
        assert all(f != "-" for f in figures), line
        peak_mb = float(figures[header.index("peak_MB") - 1])
        assert peak_mb > 50
