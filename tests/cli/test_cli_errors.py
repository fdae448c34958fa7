"""Every expected failure of `verity` is one line, `verity: VERITY-NNNN title: detail`, exit 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.conftest import run_verity
from tests.conftest import REPO_ROOT, SHARED_DATA

SAMPLE = REPO_ROOT / "docs" / "examples" / "medication-request-rxnorm.json"
PHOTO = SHARED_DATA / "pills" / "ndc_00093-7155-98" / "photo_2.jpg"
ONE_LINE = re.compile(r"^verity: (VERITY-\d{4}) [^:\n]+: [^\n]+\n$")


def assert_one_line(proc, code: str, *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    match = ONE_LINE.match(proc.stderr)
    assert match, proc.stderr
    assert match.group(1) == code, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr
    assert proc.stdout == ""


def _write_inputs(tmp: Path) -> None:
    (tmp / "not-json.json").write_text("MedicationRequest: simvastatin\n")
    (tmp / "latin1.json").write_bytes(b'{"text": "caf\xe9"}')
    (tmp / "array.json").write_text("[]")
    (tmp / "no-order.json").write_text(
        '{"resourceType": "Bundle", "type": "collection", "entry": [1, {"resource": '
        '{"resourceType": "Medication"}}]}'
    )
    (tmp / "folder.json").mkdir()
    (tmp / "no-product-id").mkdir()
    (tmp / "no-product-id" / "labels.csv").write_text("name,ndc\nX,1\n")
    (tmp / "blank-product-id").mkdir()
    (tmp / "blank-product-id" / "labels.csv").write_text("product_id,name\na,A\n,B\n")


CASES = [
    # (id, argv with {name} placeholders, code, fragments of the detail)
    ("missing photo", ["verify-pill", "--medication-request", str(SAMPLE), "--photo",
                       "missing.jpg"], "VERITY-4500", ["missing.jpg", "No such file"]),
    ("photo is a folder", ["verify-pill", "--medication-request", str(SAMPLE), "--photo",
                           "{tmp}"], "VERITY-4500", ["is a folder"]),
    ("order file missing", ["verify-pill", "--medication-request", "{tmp}/nosuch.json",
                            "--photo", str(PHOTO)], "VERITY-4500", ["nosuch.json", "does not exist"]),
    ("order file is a folder", ["verify-pill", "--medication-request", "{tmp}/folder.json",
                                "--photo", str(PHOTO)], "VERITY-4500", ["is a folder"]),
    ("order not JSON", ["verify-pill", "--medication-request", "{tmp}/not-json.json", "--photo",
                        str(PHOTO)], "VERITY-4502", ["not-json.json is not JSON"]),
    ("order not UTF-8", ["verify-pill", "--medication-request", "{tmp}/latin1.json", "--photo",
                         str(PHOTO)], "VERITY-4502", ["not UTF-8"]),
    ("order not an object", ["verify-pill", "--medication-request", "{tmp}/array.json", "--photo",
                             str(PHOTO)], "VERITY-4502", ["holds no FHIR resource"]),
    ("bundle without order", ["verify-pill", "--medication-request", "{tmp}/no-order.json",
                              "--photo", str(PHOTO)], "VERITY-4502", ["exactly one MedicationRequest"]),
    ("id without FHIR server", ["verify-pill", "--medication-request", "123", "--photo",
                                str(PHOTO)], "VERITY-5024", ["VERITY_FHIR__BASE_URL"]),
    ("evaluate a folder that is no dataset", ["evaluate", "pills", "{tmp}"], "VERITY-4501",
     ["has no labels.csv"]),
    ("import a missing folder", ["library", "import", "/no/such/dir"], "VERITY-4501",
     ["/no/such/dir is not a folder"]),
    ("import labels without product_id", ["library", "import", "{tmp}/no-product-id"],
     "VERITY-4501", ["no product_id column"]),
    ("import a row without product_id", ["library", "import", "{tmp}/blank-product-id"],
     "VERITY-4501", ["line 3 has no product_id"]),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "code", "fragments"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_expected_failures_are_one_line(tmp_path, argv, code, fragments):
    _write_inputs(tmp_path)
    args = [a.format(tmp=tmp_path) for a in argv]
    proc = run_verity(args, VERITY_DATA_DIR=tmp_path / "home")
    assert_one_line(proc, code, *fragments)
    # Nothing was started or stored for a request that failed on its input.
    assert not (tmp_path / "home").exists()


def test_unreachable_database_is_one_line(tmp_path):
    proc = run_verity(["outbox", "status"], DATABASE_URL="postgresql://127.0.0.1:1/verity")
    assert_one_line(proc, "VERITY-5030", "cannot reach the database", "Connection refused")


def test_an_unexpected_error_is_one_line_with_a_hint(tmp_path):
    # A data folder that cannot be created (its parent is a file): not an expected failure.
    (tmp_path / "a-file").write_text("")
    proc = run_verity(["outbox", "status"], VERITY_DATA_DIR=tmp_path / "a-file" / "home")
    assert_one_line(proc, "VERITY-5000", "VERITY_LOG_LEVEL=DEBUG")


@pytest.mark.slow
def test_a_photo_that_is_not_an_image_is_one_line(tmp_path, db_url):
    (tmp_path / "notes.jpg").write_text("not a photo")
    proc = run_verity(
        [
            "verify-pill",
            "--medication-request",
            str(SAMPLE),
            "--photo",
            str(tmp_path / "notes.jpg"),
        ],
        DATABASE_URL=db_url,
        VERITY_DATA_DIR=tmp_path / "home",
    )
    assert_one_line(proc, "VERITY-4101", "not a JPEG, PNG, WebP or HEIC image")
