"""Check a resource against the differential of one of Verity's profiles in `fhir_profiles/`.

Why our own: the PyPI candidates checked (2026-11) fall short for these profiles.
`pyrofile-validator` 0.3.0 compares a top-level `pattern[x]` CodeableConcept by equality of
its codings (a coding with a `display` fails a pattern without one, which FHIR allows) and
cannot load the AI Transparency IG offline; `hl7fhirgen` 0.1.0 does not disambiguate slices.
The HL7 validator is Java. So this is a deliberately small one. For every element in the
profile's differential it checks:

- cardinality (min/max) of the element within each occurrence of its parent;
- `fixed[x]` (exact) and `pattern[x]` (subset) values;
- `required` bindings to the ValueSets in `fhir_profiles/` (code, Coding, CodeableConcept);
- allowed types of a choice element (`identified[x]` restricted to dateTime: a Period is an
  error and does not count towards min);
- the resource type of a `Reference` against `targetProfile` (from `Reference.type`, the
  reference URL, a conditional reference, or a Bundle `urn:uuid:` fullUrl given by the caller);
- slices discriminated by `value`/`pattern` on `$this` or a child path (membership by the
  slice's fixed/pattern value or required binding, then its own min/max and child rules).

A resource is checked against every profile it claims that is known: Verity's own in
`fhir_profiles/` (rebased to the configured canonical base) and the AI Transparency IG's
(`ig/`: the IG's fixed codings and slices, transcribed from its FSH because its package cannot
be downloaded here; a profile of the same URL in `fhir_profiles/` takes precedence).

It does not check the base resource's own rules (the `fhir.resources` models do that),
invariants (FHIRPath), bindings to external value sets, or extension definitions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from service.writeback.datatypes import reference_type
from service.writeback.registry import (
    IG_PROFILES_DIR,
    PROFILES_DIR,
    ProfileNotFound,
    Registry,
    load_registry,
    registry_for,
)

__all__ = [
    "IG_PROFILES_DIR",
    "PROFILES_DIR",
    "ProfileNotFound",
    "Registry",
    "element_of",
    "load_registry",
    "registry_for",
    "validate",
]

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"


def validate(
    resource: Mapping[str, Any],
    profile_url: str | None = None,
    *,
    registry: Registry | None = None,
    fullurl_types: Mapping[str, str] | None = None,
) -> list[str]:
    """Every way `resource` breaks its profile (empty when it conforms)."""
    reg = registry or _default_registry()
    claimed = resource.get("meta", {}).get("profile", [])
    urls = [profile_url] if profile_url else [p for p in claimed if p in reg.profiles]
    if not urls or any(u not in reg.profiles for u in urls):
        raise ProfileNotFound(f"no known profile for {resource.get('resourceType')}")
    problems: list[str] = []
    for url in dict.fromkeys(u for claimed_url in urls for u in _lineage(claimed_url, reg)):
        sd = reg.profiles[url]
        if resource.get("resourceType") != sd["type"]:
            return [f"resourceType is {resource.get('resourceType')}, profile is for {sd['type']}"]
        problems += _Checker(sd, reg, fullurl_types or {}).run(resource)
    return problems


def _lineage(url: str, reg: Registry) -> list[str]:
    """The profile and every known profile it derives from (a derived differential holds only
    what it adds, so each ancestor is checked too), most general first."""
    chain: list[str] = []
    while url in reg.profiles and url not in chain:
        chain.append(url)
        url = str(reg.profiles[url].get("baseDefinition", ""))
    return chain[::-1]


def element_of(problem: str) -> str:
    """The element path a problem is about (no values: safe to log without patient data)."""
    return problem.split(": ", 1)[0] if ": " in problem else "resourceType"


_REGISTRY: list[Registry] = []


def _default_registry() -> Registry:
    if not _REGISTRY:
        from service.config import DEFAULT_CANONICAL_BASE

        _REGISTRY.append(registry_for(DEFAULT_CANONICAL_BASE))
    return _REGISTRY[0]


class _Checker:
    def __init__(self, sd: Mapping[str, Any], reg: Registry, types: Mapping[str, str]) -> None:
        self.elements: list[dict[str, Any]] = sd["differential"]["element"]
        # Slicing and slice rules are looked up along the base chain: a derived differential
        # may constrain a slice that its base profile defines.
        self.by_id: dict[str, dict[str, Any]] = {}
        for url in [*_lineage(str(sd.get("baseDefinition", "")), reg), None]:
            elements = (
                self.elements if url is None else reg.profiles[url]["differential"]["element"]
            )
            for e in elements:
                self.by_id[e["id"]] = {**self.by_id.get(e["id"], {}), **e}
        self.reg = reg
        self.types = types
        self.errors: list[str] = []

    def run(self, resource: Mapping[str, Any]) -> list[str]:
        for el in self.elements[1:]:
            self._check(resource, el)
        return self.errors

    def _check(self, resource: Mapping[str, Any], el: Mapping[str, Any]) -> None:
        segments = el["id"].split(".")
        parents: list[Any] = [resource]
        prefix = segments[0]
        for seg in segments[1:-1]:
            prefix = f"{prefix}.{seg}"
            parents = [c for p in parents for c in self._children(p, seg, prefix)]
        last = segments[-1]
        allowed = {t["code"] for t in el.get("type", [])}
        for parent in parents:
            if last.endswith("[x]") and allowed and isinstance(parent, Mapping):
                self._choice_types(el["id"], last[:-3], allowed, parent)
            items = self._children(parent, last, el["id"], allowed)
            self._cardinality(el, items)
            for item in items:
                self._value(el, item)

    def _choice_types(
        self, el_id: str, stem: str, allowed: set[str], parent: Mapping[str, Any]
    ) -> None:
        for key in parent:
            suffix = key[len(stem) :]
            if key.startswith(stem) and suffix[:1].isupper() and _type_code(suffix) not in allowed:
                self.errors.append(f"{el_id}: {key} not allowed, only {sorted(allowed)}")

    def _children(
        self, node: Any, seg: str, seg_id: str, allowed: set[str] | None = None
    ) -> list[Any]:
        if not isinstance(node, Mapping):
            return []
        name, _, slice_name = seg.partition(":")
        if name.endswith("[x]"):
            stem = name[:-3]
            values = [
                v
                for k, v in node.items()
                if k.startswith(stem)
                and k[len(stem) :][:1].isupper()
                and (not allowed or _type_code(k[len(stem) :]) in allowed)
            ]
        else:
            values = [node[name]] if name in node else []
        items = [i for v in values for i in (v if isinstance(v, list) else [v])]
        if slice_name:
            items = [i for i in items if self._in_slice(i, seg_id)]
        return items

    def _in_slice(self, item: Any, slice_id: str) -> bool:
        slicing = self.by_id.get(slice_id.rsplit(":", 1)[0], {}).get("slicing", {})
        for disc in slicing.get("discriminator", []):
            path = disc["path"]
            if disc["type"] == "profile" and path.endswith(".resolve()"):
                if not self._resolves_to(item, slice_id, path.removesuffix(".resolve()")):
                    return False
                continue
            rule = self.by_id.get(slice_id if path == "$this" else f"{slice_id}.{path}", {})
            if path == "url" and not rule:
                rule = _extension_url(self.by_id.get(slice_id, {}))
            values = [item] if path == "$this" else _walk(item, path.split("."))
            want = _fixed_or_pattern(rule)
            if want is None:
                # FHIR: a `value` discriminator may also be a required binding of the slice.
                members = self._required_codes(rule)
                if members is not None and not any(_member(v, members) for v in values):
                    return False
                continue
            exact = want[0] == "fixed" and disc["type"] == "value"
            if not any(_matches(want[1], v, exact) for v in values):
                return False
        return True

    def _resolves_to(self, item: Any, slice_id: str, ref_path: str) -> bool:
        """A `profile` discriminator on a reference, judged by the resource type it points at
        (the type of the slice's target profiles; no resolution, so no profile check)."""
        rule = self.by_id.get(f"{slice_id}.{ref_path}", {})
        allowed = {
            self._target_type(url)
            for t in rule.get("type", [])
            for url in t.get("targetProfile", [])
        }
        return any(self._ref_type(r) in allowed for r in _walk(item, ref_path.split(".")))

    def _ref_type(self, item: Any) -> str | None:
        if not isinstance(item, Mapping):
            return None
        ref = item.get("reference")
        found = item.get("type") or (self.types.get(ref) if isinstance(ref, str) else None)
        return found or (reference_type(ref) if isinstance(ref, str) else None)

    def _required_codes(self, el: Mapping[str, Any]) -> set[tuple[str, str]] | None:
        binding = el.get("binding", {})
        if binding.get("strength") != "required":
            return None
        return self.reg.value_sets.get(binding["valueSet"].split("|")[0])

    def _cardinality(self, el: Mapping[str, Any], items: list[Any]) -> None:
        lo = el.get("min")
        hi = el.get("max")
        if lo is not None and len(items) < lo:
            self.errors.append(f"{el['id']}: {len(items)} found, at least {lo} required")
        if hi not in (None, "*") and len(items) > int(hi):
            self.errors.append(f"{el['id']}: {len(items)} found, at most {hi} allowed")

    def _value(self, el: Mapping[str, Any], item: Any) -> None:
        want = _fixed_or_pattern(el)
        if want is not None and not _matches(want[1], item, want[0] == "fixed"):
            self.errors.append(f"{el['id']}: {json.dumps(item)} does not match {want[0]} value")
        binding = el.get("binding", {})
        if binding.get("strength") == "required":
            self._binding(el["id"], binding["valueSet"].split("|")[0], item)
        for t in el.get("type", []):
            if t["code"] == "Reference" and t.get("targetProfile"):
                self._reference(el["id"], t["targetProfile"], item)

    def _binding(self, el_id: str, vs_url: str, item: Any) -> None:
        codes = self.reg.value_sets.get(vs_url)
        if codes is None:
            return  # an external value set: not checked here
        if isinstance(item, str):
            ok = any(code == item for _, code in codes)
        elif isinstance(item, Mapping) and "coding" in item:
            ok = any((c.get("system"), c.get("code")) in codes for c in item["coding"])
        elif isinstance(item, Mapping):
            ok = (item.get("system"), item.get("code")) in codes
        else:
            ok = False
        if not ok:
            self.errors.append(f"{el_id}: no code from required value set {vs_url}")

    def _reference(self, el_id: str, targets: list[str], item: Any) -> None:
        allowed = {self._target_type(t) for t in targets}
        if not isinstance(item, Mapping):
            self.errors.append(f"{el_id}: not a Reference")
            return
        ref = item.get("reference")
        found = item.get("type") or (
            self.types.get(ref) or reference_type(ref) if isinstance(ref, str) else None
        )
        if found is None and ref is None:
            return  # a logical reference by identifier only: nothing to check
        if found is None:
            self.errors.append(f"{el_id}: cannot tell what {ref!r} points at")
        elif found not in allowed:
            self.errors.append(f"{el_id}: points at {found}, allowed {sorted(allowed)}")
        elif ref is not None and item.get("type"):
            resolved = self.types.get(ref) or reference_type(ref)
            if resolved is not None and resolved != item["type"]:
                self.errors.append(f"{el_id}: type {item['type']} but reference is {resolved}")

    def _target_type(self, url: str) -> str:
        profile = self.reg.profiles.get(url)
        if profile is not None:
            return str(profile["type"])
        return url.removeprefix(CORE_SD)


def _extension_url(slice_el: Mapping[str, Any]) -> dict[str, Any]:
    """An extension slice's url rule from its type profile (the extension's canonical), when
    the differential does not spell out the `url` child (SUSHI's and HL7's do not)."""
    urls = [p for t in slice_el.get("type", []) for p in t.get("profile", [])]
    return {"fixedUri": urls[0]} if len(urls) == 1 else {}


def _member(value: Any, members: set[tuple[str, str]]) -> bool:
    """A code, Coding or CodeableConcept with a code of the (expanded) value set."""
    if isinstance(value, str):
        return any(code == value for _, code in members)
    if isinstance(value, Mapping) and "coding" in value:
        return any(_member(c, members) for c in value["coding"])
    if isinstance(value, Mapping):
        return (value.get("system"), value.get("code")) in members
    return False


def _type_code(suffix: str) -> str:
    """`DateTime` -> `dateTime`, `Reference` -> `Reference` (complex types keep their case)."""
    lowered = suffix[:1].lower() + suffix[1:]
    primitives = {
        "boolean",
        "integer",
        "string",
        "decimal",
        "uri",
        "url",
        "canonical",
        "base64Binary",
        "instant",
        "date",
        "dateTime",
        "time",
        "code",
        "oid",
        "id",
        "markdown",
        "unsignedInt",
        "positiveInt",
        "uuid",
    }
    return lowered if lowered in primitives else suffix


def _fixed_or_pattern(el: Mapping[str, Any]) -> tuple[str, Any] | None:
    for key, value in el.items():
        if key.startswith("fixed"):
            return ("fixed", value)
        if key.startswith("pattern"):
            return ("pattern", value)
    return None


def _walk(node: Any, path: list[str]) -> list[Any]:
    nodes = [node]
    for name in path:
        nxt: list[Any] = []
        for n in nodes:
            if isinstance(n, Mapping) and name in n:
                v = n[name]
                nxt.extend(v if isinstance(v, list) else [v])
        nodes = nxt
    return nodes


def _matches(want: Any, have: Any, exact: bool) -> bool:
    """fixed: equal; pattern: every given property present and equal, lists by containment."""
    if exact:
        return bool(want == have)
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(
            k in have and _matches(v, have[k], False) for k, v in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and all(
            any(_matches(w, h, False) for h in have) for w in want
        )
    return bool(want == have)
