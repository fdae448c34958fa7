"""The README's main job and the shell commands around it, as a user runs them."""

import json
import os
import subprocess
import sys

import pytest

from service.demo_library import DEMO_PILLS, demo_order, phone_photo

pytestmark = pytest.mark.slow


def _run(args, data_dir, timeout=300):
    env = {**os.environ, "VERITY_DATA_DIR": str(data_dir), "VERITY_LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    env.pop("VERITY_FHIR__BASE_URL", None)
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_demo_then_verify_pill_and_outbox_status(pg_dir, tmp_path):
    demo = _run(["demo"], pg_dir)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert "Demo library: 7 rendered products" in out
    for title in ("correct dispense", "wrong pill", "two tablets"):
        assert title in out
    assert "would write DetectedIssue" in out and "would write Provenance" in out
    assert "COUNT_MISMATCH" in out
    # A second run reuses the library (same images are not enrolled twice) and still works.
    again = _run(["demo"], pg_dir)
    assert again.returncode == 0 and "14 reference images" in again.stdout

    simva = DEMO_PILLS[5]
    (tmp_path / "order.json").write_text(json.dumps(demo_order(simva, "o-1", "Patient/p-1")))
    (tmp_path / "photo.jpg").write_bytes(phone_photo(simva, seed=3))
    verify = _run(["verify-pill", "--medication-request", str(tmp_path / "order.json"),
                   "--photo", str(tmp_path / "photo.jpg"), "--json"], pg_dir)  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    result = json.loads(verify.stdout)
    assert result["order_ref"] == "MedicationRequest/o-1"
    assert [e["id"] for e in result["expected"]] == [simva.product.id]
    assert result["pills"][0]["candidates"][0]["product"]["id"] == simva.product.id
    assert result["fhir"]["status"] in ("not_written", "dry_run")

    status = _run(["outbox", "status"], pg_dir)
    assert status.returncode == 0 and json.loads(status.stdout)["counts"]["pending"] == 0


def test_verify_pill_without_fhir_and_with_an_id_is_a_clear_error(pg_dir, tmp_path):
    (tmp_path / "p.jpg").write_bytes(phone_photo(DEMO_PILLS[0]))
    proc = _run(
        ["verify-pill", "--medication-request", "123", "--photo", str(tmp_path / "p.jpg")], pg_dir
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("verity: VERITY-5024") and "Traceback" not in proc.stderr
