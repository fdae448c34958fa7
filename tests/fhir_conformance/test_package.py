"""The FHIR package builds offline from the sources and equals the committed build (no drift)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "build_fhir_package.py"
COMMITTED = REPO_ROOT / "fhir_profiles" / "package"


def _tree(root):
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_committed_package_is_what_the_sources_build(tmp_path):
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    for pid in ("hl7.fhir.uv.aitransparency", "example.hospital.verity"):
        fresh, kept = _tree(tmp_path / pid / "package"), _tree(COMMITTED / pid)
        assert sorted(fresh) == sorted(kept), pid
        for rel, text in fresh.items():
            assert text == kept[rel], (
                f"{pid}/{rel} drifted: run scripts/build_fhir_package.py --update"
            )
    with tarfile.open(tmp_path / "example.hospital.verity-0.2.0.tgz") as tar:
        manifest = json.load(tar.extractfile("package/package.json"))
    assert manifest["dependencies"] == {
        "hl7.fhir.r4.core": "4.0.1",
        "hl7.fhir.uv.aitransparency": "1.0.0-current",
    }


def test_canonical_base_is_a_build_parameter(tmp_path):
    base = "https://fhir.other-hospital.example/ai"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--canonical-base", base],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    pkg = tmp_path / "example.hospital.verity" / "package"
    prov = json.loads((pkg / "StructureDefinition-verity-provenance.json").read_text())
    assert prov["url"] == f"{base}/StructureDefinition/verity-provenance"
    assert "fhir.hospital.example" not in "".join(p.read_text() for p in pkg.glob("*.json"))


def test_differentials_are_in_snapshot_order():
    for p in sorted((COMMITTED / "example.hospital.verity").glob("StructureDefinition-*.json")):
        sd = json.loads(p.read_text())
        order = [e["id"] for e in sd["snapshot"]["element"]]
        ids = [e["id"] for e in sd["differential"]["element"]]
        assert ids == sorted(ids, key=order.index), p.name
