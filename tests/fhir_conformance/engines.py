"""Run the independent validators (Medplum's and FHIR.js, tests/fhir_conformance/validate.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

PACKAGES = REPO_ROOT / "fhir_profiles" / "package"
IG_PACKAGE = PACKAGES / "hl7.fhir.uv.aitransparency"
VERITY_PACKAGE = PACKAGES / "example.hospital.verity"
SCRIPT = Path(__file__).with_name("validate.mjs")
TIMEOUT_S = 120
# Warnings each engine gives on every correct write-back, with the reason (docs/fhir-package.md):
# a Bundle-local urn:uuid reference has no resource type Medplum can read; FHIR.js reports codes
# outside example/preferred/extensible R4 bindings (not an error in R4) and value sets it lacks.
ACCEPTED = (
    ("medplum", "warning", 'Invalid reference: got "urn:uuid:'),
    ("fhirjs", "warning", "not found in value set"),
    ("fhirjs", "info", "could not be found"),
)


def verity_profile_urls() -> dict[str, str]:
    """Verity's profile canonicals in the committed package, by profile id."""
    out = {}
    for p in VERITY_PACKAGE.glob("StructureDefinition-*.json"):
        sd = json.loads(p.read_text())
        out[sd["id"]] = sd["url"]
    return out


def profiles_for(resource: dict[str, Any]) -> list[str]:
    """The resource's meta.profile, plus the package's own profile of the same id when the
    resource names it under another canonical base (so every other constraint still runs)."""
    named = list(resource.get("meta", {}).get("profile", []))
    mine = verity_profile_urls()
    extra = [mine[u.rsplit("/", 1)[-1]] for u in named if u.rsplit("/", 1)[-1] in mine]
    return named + [u for u in extra if u not in named]


def validate(resources: list[dict[str, Any]], tmp: Path) -> list[dict[str, list[dict[str, str]]]]:
    """Issues per resource from both engines, in order."""
    node = shutil.which("node")
    assert node, "node is needed (bash tests/servers/install.sh)"
    request = {
        "packages": [str(IG_PACKAGE), str(VERITY_PACKAGE)],
        "items": [{"resource": r, "profiles": profiles_for(r)} for r in resources],
    }
    path = tmp / "request.json"
    path.write_text(json.dumps(request))
    proc = subprocess.run(
        [node, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: list[dict[str, list[dict[str, str]]]] = json.loads(proc.stdout)
    return result


def problems(resources: list[dict[str, Any]], tmp: Path) -> list[str]:
    """Every error, and every warning not in ACCEPTED, as 'Type engine severity where: text'."""
    out = []
    for res, found in zip(resources, validate(resources, tmp), strict=True):
        for engine, issues in found.items():
            for i in issues:
                if any(
                    engine == e and i["severity"] == s and t in i["text"] for e, s, t in ACCEPTED
                ):
                    continue
                out.append(
                    f"{res['resourceType']} {engine} {i['severity']} {i['where']}: {i['text']}"
                )
    return out
