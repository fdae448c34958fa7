"""The conformance resources a write-back is checked against, by canonical URL: Verity's own
(`fhir_profiles/`, moved under the configured canonical base) and the AI Transparency IG's
(`ig/`, transcribed from its FSH because its package cannot be downloaded here)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILES_DIR = Path(__file__).resolve().parents[2] / "fhir_profiles"
IG_PROFILES_DIR = Path(__file__).resolve().parent / "ig"
HL7_CANONICAL = "http://hl7.org/"


class ProfileNotFound(LookupError):
    """The resource names no profile this validator knows."""


@dataclass(frozen=True)
class Registry:
    """The conformance resources of `fhir_profiles/`, by canonical URL."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    value_sets: dict[str, set[tuple[str, str]]] = field(default_factory=dict)


def load_registry(
    directory: Path = PROFILES_DIR, base: str | None = None, ig_dir: Path | None = IG_PROFILES_DIR
) -> Registry:
    """Read every StructureDefinition, CodeSystem and ValueSet once and expand the ValueSets;
    with `base`, the package's own canonical URLs are moved under `base`."""
    docs = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    if base is not None:
        docs = [_rebased(d, package_base(docs), base) for d in docs]
    if ig_dir is not None:
        known = {d.get("url") for d in docs}
        ig_docs = [json.loads(p.read_text()) for p in sorted(ig_dir.glob("*.json"))]
        docs = [d for d in ig_docs if d.get("url") not in known] + docs
    systems = {d["url"]: d for d in docs if d["resourceType"] == "CodeSystem"}
    reg = Registry()
    for d in docs:
        if d["resourceType"] == "StructureDefinition":
            reg.profiles[d["url"]] = d
        elif d["resourceType"] == "ValueSet":
            reg.value_sets[d["url"]] = _expand(d, systems)
    return reg


def package_base(docs: Iterable[Mapping[str, Any]]) -> str | None:
    """The canonical base of a package's own conformance resources (`<base>/<Type>/<id>`)."""
    bases = {
        str(d["url"]).rsplit("/", 2)[0]
        for d in docs
        if isinstance(d.get("url"), str) and not str(d["url"]).startswith(HL7_CANONICAL)
    }
    if len(bases) > 1:
        raise ProfileNotFound(f"fhir_profiles/ mixes canonical bases: {sorted(bases)}")
    return next(iter(bases), None)


def _rebased(node: Any, old: str | None, new: str) -> Any:
    if old is None or old == new:
        return node
    if isinstance(node, str):
        return new + node[len(old) :] if node.startswith(f"{old}/") else node
    if isinstance(node, list):
        return [_rebased(v, old, new) for v in node]
    if isinstance(node, dict):
        return {k: _rebased(v, old, new) for k, v in node.items()}
    return node


_BY_BASE: dict[str, Registry] = {}


def registry_for(base: str) -> Registry:
    """The registry with Verity's profiles under `base` (loaded once per base)."""
    if base not in _BY_BASE:
        _BY_BASE[base] = load_registry(base=base)
    return _BY_BASE[base]


def _expand(vs: Mapping[str, Any], systems: Mapping[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for inc in vs.get("compose", {}).get("include", []):
        system = inc["system"]
        if "concept" in inc:
            out.update((system, c["code"]) for c in inc["concept"])
        elif system in systems:
            out.update((system, c["code"]) for c in _concepts(systems[system].get("concept", [])))
        else:
            raise ProfileNotFound(f"cannot expand {vs['url']}: code system {system} not local")
    return out


def _concepts(concepts: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for c in concepts:
        yield c
        yield from _concepts(c.get("concept", []))
