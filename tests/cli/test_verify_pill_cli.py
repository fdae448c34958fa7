"""`verity verify-pill` end to end, as a first-time user runs it: import real dataset products,
then check a real photo against a sample order (summary, then --json); a dry run stores nothing."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.cli.conftest import run_verity, subset_dataset
from tests.conftest import REPO_ROOT, SHARED_DATA

pytestmark = pytest.mark.slow

SIMVASTATIN = "ndc_00093-7155-98"  # no studio ref: photo_1 enrols it, photo_2 is the query
PRODUCTS = [SIMVASTATIN, "ndc_53489-0510-01", "ndc_00093-0311-01", "ndc_00049-4910-30",
            "ndc_00093-3147-01"]  # fmt: skip
PHOTO = SHARED_DATA / "pills" / SIMVASTATIN / "photo_2.jpg"
EXAMPLES = REPO_ROOT / "docs" / "examples"


def _audit_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM verification").fetchone()[0])  # type: ignore[index]


def test_verify_pill_on_a_real_photo_with_a_sample_order(make_database, tmp_path):
    url = make_database("cli")
    env = {"DATABASE_URL": url, "VERITY_DATA_DIR": tmp_path / "home"}
    imported = run_verity(["library", "import", str(subset_dataset(tmp_path / "ds", PRODUCTS))],
                          **env)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(f"imported {len(PRODUCTS)} products")

    order = str(EXAMPLES / "medication-request-rxnorm.json")
    args = ["verify-pill", "--medication-request", order, "--photo", str(PHOTO)]
    summary = run_verity(args, **env)
    assert summary.returncode == 0, summary.stderr
    assert "Traceback" not in summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0] == ("Order    MedicationRequest/example-simvastatin-40 (active): "
                        "simvastatin 40 MG Oral Tablet")  # fmt: skip
    assert lines[1] == f"         expects {SIMVASTATIN} SIMVASTATIN (NDC 00093-7155-98)"
    assert lines[2] == "Seen     1 pill(s) in 1 photo(s)"
    assert lines[3].startswith("         pill 1 (photo 1): ")
    verdict = next(line for line in lines if line.startswith("Verdict  "))
    assert (
        lines[-1]
        == "         dry run: nothing recorded in the audit table, nothing sent to the EHR"
    )

    as_json = run_verity([*args, "--json"], **env)
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["order_ref"] == "MedicationRequest/example-simvastatin-40"
    assert [e["id"] for e in result["expected"]] == [SIMVASTATIN]
    assert result["pills"][0]["candidates"][0]["product"]["id"] == SIMVASTATIN
    assert verdict.startswith(f"Verdict  {result['verdict']}: ")
    assert result["recorded"] is False
    assert result["fhir"]["status"] in ("not_written", "dry_run")

    # The same photo against another drug's order (a Bundle sample): the pill is most like
    # simvastatin, so the trazodone order cannot be a MATCH and a DetectedIssue would be written.
    wrong = run_verity(["verify-pill", "--medication-request", str(EXAMPLES / "bundle.json"),
                        "--photo", str(PHOTO)], **env)  # fmt: skip
    assert wrong.returncode == 0, wrong.stderr
    assert "expects ndc_53489-0510-01 TRAZODONE" in wrong.stdout
    assert "Verdict  MATCH" not in wrong.stdout
    assert "Write    would write to the EHR" in wrong.stdout
    assert "           DetectedIssue severity " in wrong.stdout

    # Dry runs record nothing: the audit table is as empty as before.
    assert _audit_rows(url) == 0
