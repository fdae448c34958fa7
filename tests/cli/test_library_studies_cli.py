"""`verity library studies` as a user runs it, against a database of its own."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from service.store import migrate
from tests.cli.conftest import run_verity
from tests.conftest import SHARED_DATA

STUDIES = SHARED_DATA / "studies"
LEG = SHARED_DATA / "dicom" / "other" / "wg04_RG3_cr_extremity_j2k_lossless.dcm"


@pytest.mark.slow
async def test_enrol_list_reembed_remove(make_database: Any, tmp_path) -> None:
    url: str = make_database("imglibcli")
    await migrate.upgrade(url)
    env = {"DATABASE_URL": url, "VERITY_DATA_DIR": tmp_path}
    folder = tmp_path / "legs"
    folder.mkdir()
    shutil.copy(LEG, folder / "leg.dcm")

    proc = run_verity(["library", "studies", "enrol", str(STUDIES)], **env)
    assert proc.returncode == 0, proc.stderr
    assert "enrolled 9 archive studies" in proc.stdout
    proc = run_verity(["library", "studies", "enrol", "--dicom", str(folder), "--modality", "CR",
                       "--body-part", "leg", "--laterality", "R", "--view", "AP"], **env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "enrolled 1 DICOM files as CR LEG references (1 images)" in proc.stdout

    proc = run_verity(["library", "studies", "list", "--source", "reference"], **env)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert ["reference", "CR", "LEG", "R", "AP"] == rows[1][:5] and rows[1][-1] == "1"
    assert "1 labelled images" in proc.stdout
    study_uid = rows[-1][0]

    proc = run_verity(["library", "studies", "reembed"], **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("re-embedded 0 images with efficientnet-lite0@")

    proc = run_verity(["library", "studies", "remove", study_uid], **env)
    assert proc.returncode == 0 and "removed 1 images" in proc.stdout, proc.stderr
    proc = run_verity(["library", "studies", "remove", study_uid], **env)
    assert proc.returncode != 0 and "VERITY-4204" in proc.stderr

    proc = run_verity(["library", "studies", "enrol", "--dicom", str(folder), "--modality", "SR",
                       "--body-part", "CHEST"], **env)  # fmt: skip
    assert proc.returncode != 0 and "VERITY-4000" in proc.stderr
