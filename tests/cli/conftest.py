"""Running `verity` as a user does: a subprocess with this worktree's code, no FHIR server."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT, SHARED_DATA


def run_verity(args: list[str], **env: Any) -> subprocess.CompletedProcess[str]:
    """`python -m service.cli ARGS` with VERITY_LOG_LEVEL=WARNING and the given environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VERITY_", "DATABASE_URL"))}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), base.get("PYTHONPATH", "")])
    full = {**base, "VERITY_LOG_LEVEL": "WARNING", **{k: str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=full,
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)  # fmt: skip


def subset_dataset(dest: Path, products: list[str]) -> Path:
    """A dataset folder with only these products of ../shared/data/pills (symlinked images)."""
    src = SHARED_DATA / "pills"
    with (src / "labels.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r["product_id"] in products]
        fields = list(reader.fieldnames or [])
    assert len(rows) == len(products), "a product is missing from the dataset"
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for pid in products:
        (dest / pid).symlink_to(src / pid)
    return dest
