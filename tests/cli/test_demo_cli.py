"""The README's main job and the shell commands around it, as a user runs them."""

import asyncio
import csv
import json
import os
import re
import subprocess
import sys

import httpx
import psycopg
import pytest

from service.config import Settings
from service.demo.renderer import DEMO_PILLS, demo_order, phone_photo, reference_images
from service.demo.runner import PATIENT, run_demo
from service.store import migrate
from service.store.embedded import EmbeddedPostgres

pytestmark = pytest.mark.slow


def _run(args, data_dir, timeout=300, database_url=None):
    env = {**os.environ, "VERITY_DATA_DIR": str(data_dir), "VERITY_LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    env.pop("VERITY_FHIR__BASE_URL", None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _contents(url):
    """(product ids, verification order refs) of a database; empty when it has no schema."""
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('product')").fetchone()[0] is None:
            return [], []
        products = [r[0] for r in conn.execute("SELECT id FROM product ORDER BY id")]
        orders = [r[0] for r in conn.execute("SELECT order_ref FROM verification ORDER BY 1")]
    return products, orders


def _users_database(data_dir):
    """What the embedded database under VERITY_DATA_DIR holds (None: it was never created)."""
    if not (data_dir / "postgres").exists():
        return None
    pg = EmbeddedPostgres(data_dir)
    try:
        return _contents(pg.start())
    finally:
        pg.stop()


def _cases(out):
    """The text of each numbered case of the demo's output, by number."""
    parts = re.split(r"^\[(\d)\] ", out, flags=re.M)
    return {
        int(n): text.split("\nAudit trail")[0]
        for n, text in zip(parts[1::2], parts[2::2], strict=True)
    }


def _verdict(case):
    return next(line.strip() for line in case.splitlines() if line.strip().startswith("Verdict:"))


def test_demo_leaves_the_users_library_and_audit_trail_alone(pg_dir):
    demo = _run(["demo"], pg_dir)
    assert demo.returncode == 0, demo.stderr
    # The user's database under the data folder: never created, or without any trace of the demo.
    held = _users_database(pg_dir)
    assert held is None or held == ([], []), held

    out = demo.stdout
    assert "Library:  7 rendered demo products, 14 reference images" in out
    cases = _cases(out)
    assert sorted(cases) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert _verdict(cases[1]).startswith("Verdict:  OK - the pill is the ordered drug")
    assert _verdict(cases[2]).startswith("Verdict:  OK - the pill is the ordered drug")
    assert "another maker" in cases[2]
    assert _verdict(cases[3]).startswith(
        "Verdict:  PROBLEM - wrong drug: the pill looks like Amlodipine 5 mg tablet, "
        "not the ordered Metformin 500 mg tablet"
    )
    # The double dose reads as a problem at first glance, never as a match.
    assert _verdict(cases[4]).startswith(
        "Verdict:  PROBLEM - wrong quantity: 2 tablets in the photo, the order is 1 per dose"
    )
    assert "MATCH" not in _verdict(cases[4])
    for words in ("MATCH band", "findings: none", "verdict: MATCH"):
        assert words not in out
    # Each pill: what it was identified as, with its score.
    assert re.search(r"Pill 1: +Amlodipine 5 mg tablet .*score 0\.\d\d: NOT the ordered", cases[3])
    assert len(re.findall(r"Pill \d: +Lisinopril 10 mg tablet .*score", cases[4])) == 2
    # What happens in the EHR, in words; the JSON only behind --show-fhir.
    assert "nothing written: a correct dispense is kept in Verity's audit trail" in cases[1]
    assert "dry run, nothing sent: no FHIR server is configured" in cases[3]
    assert '"resourceType"' not in out
    # The audit trail as recorded (one line per check) and how to see it on a real installation.
    trail = out.split("Audit trail:")[1]
    for n, summary in ((1, "OK"), (2, "OK"), (3, "PROBLEM"), (4, "PROBLEM")):
        assert re.search(rf"MedicationRequest/demo-order-{n} +{summary} ", trail), trail
    assert "/v1/medication-verifications?patient=" in trail
    # The imaging studies: each fault found, nothing else, and the clean study passes.
    assert _verdict(cases[5]).startswith("Verdict:  OK")
    for n, codes in ((6, "PATIENT_ID_MISMATCH"), (7, "STUDY_INCOMPLETE, SLICE_GAP"),
                     (8, "DUPLICATE_IMAGE")):  # fmt: skip
        assert _verdict(cases[n]) == f"Verdict:  PROBLEM ({codes}): hold the study for review"
    assert (
        "would write to the EHR: 3 DocumentReference, 1 Device, 1 DiagnosticReport, 13 Observation"
        in cases[5]
    )  # the model cards of the imaging checks, the pixel fingerprint and the image embedder
    assert len(re.findall(r"ImagingStudy/\S+ +OK ", trail)) == 1
    assert len(re.findall(r"ImagingStudy/\S+ +PROBLEM ", trail)) == 3


def test_demo_on_an_explicit_database_removes_its_products_and_shows_fhir(pg_dir, make_database):
    named, inherited = make_database("demo_named"), make_database("demo_inherited")
    for url in (named, inherited):
        asyncio.run(migrate.upgrade(url))
    with psycopg.connect(named, autocommit=True) as conn:
        conn.execute("INSERT INTO product (id, name) VALUES ('user-own-1', 'Own product')")

    demo = _run(["demo", "--database-url", named, "--show-fhir"], pg_dir, database_url=inherited)
    assert demo.returncode == 0, demo.stderr
    # The named database keeps its own product and the eight checks, not the rendered products
    # nor the generated images' fingerprints.
    products, orders = _contents(named)
    assert products == ["user-own-1"]
    assert orders[:4] == [f"ImagingStudy/{s}" for s in sorted(o[13:] for o in orders[:4])]
    assert orders[4:] == [f"MedicationRequest/demo-order-{n}" for n in (1, 2, 3, 4)]
    with psycopg.connect(named) as conn:
        assert conn.execute("SELECT count(*) FROM image_fingerprint").fetchone() == (0,)
    # An inherited DATABASE_URL is the user's production database: not used.
    assert _contents(inherited) == ([], [])
    assert _users_database(pg_dir) is None

    case3 = _cases(demo.stdout)[3]
    start = case3.index("would write DetectedIssue:\n") + len("would write DetectedIssue:\n")
    end = case3.index("    would write Provenance:")
    issue = json.loads(case3[start:end])
    assert issue["resourceType"] == "DetectedIssue" and issue["severity"] == "high"
    assert issue["implicated"][0]["reference"] == "MedicationRequest/demo-order-3"


@pytest.mark.parametrize("url", ["", "not a url"])
def test_demo_refuses_a_database_url_that_is_not_one(pg_dir, url):
    proc = _run(["demo", "--database-url", url], pg_dir)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("verity: --database-url is not a PostgreSQL URL")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert _users_database(pg_dir) is None


async def test_demo_delivers_to_a_real_fhir_server_before_its_database_is_dropped(
    fhir_server, pg_dir, capsys
):
    settings = Settings(data_dir=pg_dir, fhir=fhir_server.settings_for("verity-rs384"))
    assert await run_demo(settings) == 0
    out = capsys.readouterr().out
    assert f"All findings delivered to {fhir_server.base_url}" in out
    assert "queued for" in _cases(out)[3] and "nothing written" in _cases(out)[1]
    r = httpx.get(f"{fhir_server.base_url}/DetectedIssue", params={"patient": PATIENT},
                  headers=fhir_server.admin_headers(), timeout=10)  # fmt: skip
    r.raise_for_status()
    implicated = {e["resource"]["implicated"][0]["reference"] for e in r.json()["entry"]}
    assert implicated == {"MedicationRequest/demo-order-3", "MedicationRequest/demo-order-4"}
    assert _users_database(pg_dir) is None


def _dataset(folder, pill):
    """A one-product dataset folder (labels.csv + studio references) of a demo pill."""
    p = pill.product
    ing = p.ingredients[0]
    with (folder / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["product_id", "name", "strength", "ndc", "imprint", "shape"])
        writer.writerow(["my-simva-40", ing.name, ing.strength, p.ndcs[0], p.imprint, "tablet"])
    (folder / "my-simva-40").mkdir()
    for i, image in enumerate(reference_images(pill), 1):
        (folder / "my-simva-40" / f"ref_{i}.jpg").write_bytes(image)
    return folder


def test_import_then_verify_pill_and_outbox_status(pg_dir, tmp_path):
    simva = DEMO_PILLS[5]
    imported = _run(["library", "import", str(_dataset(tmp_path, simva))], pg_dir)
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 products, 2 reference images" in imported.stdout

    (tmp_path / "order.json").write_text(json.dumps(demo_order(simva, "o-1", "Patient/p-1")))
    (tmp_path / "photo.jpg").write_bytes(phone_photo(simva, seed=3))
    verify = _run(["verify-pill", "--medication-request", str(tmp_path / "order.json"),
                   "--photo", str(tmp_path / "photo.jpg"), "--json"], pg_dir)  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    result = json.loads(verify.stdout)
    assert result["order_ref"] == "MedicationRequest/o-1"
    assert [e["id"] for e in result["expected"]] == ["my-simva-40"]
    assert result["pills"][0]["candidates"][0]["product"]["id"] == "my-simva-40"
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
