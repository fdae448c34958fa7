"""Build Verity's FHIR package (and the IG transcription it depends on) offline, with snapshots.

Sources: `fhir_profiles/*.json` (Verity's profiles, code systems and value sets, differentials
written under DEFAULT_BASE) and `fhir_profiles/ig/` (the AI Transparency IG's FSH, transcribed).
Steps, all offline: lay out `hl7.fhir.r4.core` in a throwaway FHIR package cache
(scripts/fhir_core_cache.py), SUSHI turns the IG's FSH into JSON, Verity's sources are
rebased on `--canonical-base`, and fhir-snapshot-generator adds every snapshot. Output per
package: `<out>/<id>/package/` and a reproducible `<out>/<id>-<version>.tgz`. The default build is
committed under `fhir_profiles/package/` (`--update`), and tests/fhir_conformance checks it has
not drifted from the sources.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fhir_core_cache as cache_mod  # noqa: E402

REPO = cache_mod.REPO
PROFILES = REPO / "fhir_profiles"
IG_SOURCES = PROFILES / "ig"
COMMITTED = PROFILES / "package"
SUSHI = cache_mod.NODE_MODULES / ".bin" / "sushi"
SNAPSHOTS = REPO / "scripts" / "fhir_snapshots.mjs"
DEFAULT_BASE = "https://fhir.hospital.example/verity"
VERITY_ID = "example.hospital.verity"
VERITY_VERSION = "0.2.0"
IG_ID = "hl7.fhir.uv.aitransparency"
IG_VERSION = "1.0.0-current"
IG_COMMIT = "805d2a78ab410e1afdc0fde85370510abefe58d1"
TOOL_TIMEOUT_S = 300


def ig_manifest() -> dict[str, Any]:
    """package.json of the IG transcription: the IG's identity, marked as Verity's copy."""
    return {
        "name": IG_ID,
        "version": IG_VERSION,
        "fhirVersions": ["4.0.1"],
        "type": "IG",
        "canonical": "http://hl7.org/fhir/uv/aitransparency",
        "title": "AI Transparency on FHIR: definitions transcribed by the Verity project",
        "description": (
            "Not HL7's published package: the profiles, extensions and terminology of "
            f"HL7/aitransparency-ig input/fsh at commit {IG_COMMIT}, built with SUSHI by "
            "Verity's scripts/build_fhir_package.py. Examples left out."
        ),
        "license": "CC0-1.0",
        "dependencies": {cache_mod.CORE_ID: cache_mod.CORE_VERSION},
    }


def verity_manifest(canonical_base: str, version: str) -> dict[str, Any]:
    """package.json of Verity's package under the configured canonical base."""
    return {
        "name": VERITY_ID,
        "version": version,
        "fhirVersions": ["4.0.1"],
        "type": "IG",
        "canonical": canonical_base,
        "title": "Verity: profiles of what Verity writes to the EHR",
        "description": (
            "Profiles (derived from the AI Transparency IG's AI-Device, AI-Provenance and "
            "AI-ModelCard), code systems and value sets of Verity's write-back."
        ),
        "dependencies": {cache_mod.CORE_ID: cache_mod.CORE_VERSION, IG_ID: IG_VERSION},
    }


def run_sushi(work: Path, home: Path) -> list[dict[str, Any]]:
    """SUSHI on the IG transcription; its JSON resources (differentials only)."""
    out = work / "sushi"
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.run(
        [str(SUSHI), "build", str(IG_SOURCES), "-o", str(out), "-l", "warn"],
        env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
    )  # fmt: skip
    if proc.returncode != 0 or " 0 Errors" not in proc.stdout:
        raise SystemExit(f"sushi failed:\n{proc.stdout}\n{proc.stderr}")
    folder = out / "fsh-generated" / "resources"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def verity_sources(canonical_base: str) -> list[dict[str, Any]]:
    """Verity's source resources with DEFAULT_BASE replaced by `canonical_base`."""
    out = []
    for path in sorted(PROFILES.glob("*.json")):
        text = path.read_text().replace(DEFAULT_BASE, canonical_base.rstrip("/"))
        out.append(json.loads(text))
    return out


def snapshots(cache: Path, work: Path, context: list[str]) -> dict[str, dict[str, Any]]:
    """fhir-snapshot-generator over the first package of `context`; the SDs by file name."""
    out = work / ("snap-" + context[0].split("#")[0])
    proc = subprocess.run(
        ["node", str(SNAPSHOTS), str(cache), str(out), *context],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"snapshot generation failed:\n{proc.stdout}\n{proc.stderr}")
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def with_snapshots(
    resources: list[dict[str, Any]], snaps: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each StructureDefinition replaced by its snapshot-bearing copy."""
    return [snaps.get(f"{r['resourceType']}-{r['id']}.json", r) for r in resources]


def tgz(folder: Path, target: Path) -> None:
    """A reproducible npm-style tarball (`package/...`, fixed mtimes and owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            info = tarfile.TarInfo(f"package/{path.name}")
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    target.write_bytes(gzip.compress(raw.getvalue(), mtime=0))


def build(out: Path, canonical_base: str = DEFAULT_BASE, version: str = VERITY_VERSION) -> Path:
    """Build both packages into `out`; returns Verity's package folder."""
    work = out / ".work"
    home = work / "home"
    cache = home / ".fhir" / "packages"
    cache_mod.install_core(cache)
    cache_mod.install_absent_implicit(cache)
    ig = run_sushi(work, home)
    cache_mod.write_package(cache_mod.package_dir(cache, IG_ID, IG_VERSION), ig_manifest(), ig)
    mine = verity_sources(canonical_base)
    manifest = verity_manifest(canonical_base, version)
    cache_mod.write_package(cache_mod.package_dir(cache, VERITY_ID, version), manifest, mine)
    ig = with_snapshots(ig, snapshots(cache, work, [f"{IG_ID}#{IG_VERSION}"]))
    mine = with_snapshots(mine, snapshots(cache, work, [f"{VERITY_ID}#{version}"]))
    for pid, pver, man, res in (
        (IG_ID, IG_VERSION, ig_manifest(), ig),
        (VERITY_ID, version, manifest, mine),
    ):
        folder = out / pid / "package"
        cache_mod.write_package(folder, man, res)
        tgz(folder, out / f"{pid}-{pver}.tgz")
    return out / VERITY_ID / "package"


def committed_tree(root: Path = COMMITTED) -> dict[str, str]:
    """Every committed package file's text by relative path (the drift test compares these)."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def update_committed(out: Path) -> None:
    """Replace `fhir_profiles/package/` with the package folders of a default build."""
    for pid in (IG_ID, VERITY_ID):
        cache_mod.write_package(COMMITTED / pid, {}, [])  # empties the folder
        for path in (out / pid / "package").iterdir():
            (COMMITTED / pid / path.name).write_bytes(path.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "fhir-package")
    parser.add_argument("--canonical-base", default=DEFAULT_BASE)
    parser.add_argument("--version", default=VERITY_VERSION)
    parser.add_argument("--update", action="store_true", help="refresh fhir_profiles/package/")
    args = parser.parse_args()
    folder = build(args.out, args.canonical_base, args.version)
    if args.update:
        if args.canonical_base != DEFAULT_BASE or args.version != VERITY_VERSION:
            raise SystemExit("--update commits the default build only")
        update_committed(args.out)
    print(f"built {folder} and {args.out / f'{VERITY_ID}-{args.version}.tgz'}")


if __name__ == "__main__":
    main()
