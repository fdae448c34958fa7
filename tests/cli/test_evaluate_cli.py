import csv
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SHARED_DATA

# One product with a studio ref, one enrolled from photo_1, one never enrolled (single photo).
SUBSET = ["ndc_00049-4910-30", "ndc_00093-7155-98", "ndc_00093-0135-01"]


def _subset(tmp_path):
    src = SHARED_DATA / "pills"
    with (src / "labels.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r["product_id"] in SUBSET]
        fields = reader.fieldnames
    with (tmp_path / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    for pid in SUBSET:
        (tmp_path / pid).symlink_to(src / pid)
    return tmp_path


@pytest.mark.slow
def test_evaluate_pills_json_follows_the_protocol(tmp_path):
    data = _subset(tmp_path)
    env = {**os.environ, "VERITY_LOG_LEVEL": "WARNING", "VERITY_DATA_DIR": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "evaluate", "pills", str(data), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in (
        "products",
        "queries",
        "top1",
        "top5",
        "true_accept_rate",
        "false_accept_rate",
        "uncertain_rate",
        "p50_ms",
        "p95_ms",
    ):
        assert key in result
    # sertraline: 1 photo query; simvastatin: photo_1 enrols, photos 2-5 query; carvedilol: 1 query
    assert result["products"] == 2
    assert result["queries"] == 1 + 4 + 1
    assert result["identification_queries"] == 5
    # The user's library was not touched: no data folder was created for it.
    assert not (tmp_path / "home").exists()
