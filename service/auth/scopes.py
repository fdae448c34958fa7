"""SMART scopes, v2 (`system/Type.cruds`) and v1 (`user/Type.read|write|*`), and Verity's own.

Verity's API is described with SMART-shaped scopes on Verity's own resource names, so an
authorization server that already speaks SMART can issue them unchanged:

    system/Verification.c    request a pill or imaging verification
    system/Verification.rs   read and search verification results (audit reviewers)
    system/Library.rs        read the reference library (products, reference images)
    system/Library.cud       create, change and delete library products and reference images
    system/Outbox.rs         see the FHIR write-back queue and dead letters
    system/Outbox.u          retry a dead-lettered write-back

`user/` and `patient/` prefixes and v1 suffixes (`.read` = rs, `.write` = cud, `.*` = all)
are understood too; `*` matches any resource type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

VERITY_SCOPES: dict[str, str] = {
    "system/Verification.c": "request a pill or imaging verification",
    "system/Verification.rs": "read and search verification results (audit)",
    "system/Library.rs": "read the reference library",
    "system/Library.cud": "manage library products and reference images",
    "system/Outbox.rs": "see the FHIR write-back queue and dead letters",
    "system/Outbox.u": "retry a dead-lettered write-back",
}

CONTEXTS = ("system", "user", "patient")
INTERACTIONS = {"create": "c", "read": "r", "update": "u", "delete": "d", "search": "s"}
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset("cruds")}
_SCOPE = re.compile(r"^(system|user|patient)/([A-Za-z]+|\*)\.([a-z*]+)(\?.+)?$")
_V2_PERMS = re.compile(r"^c?r?u?d?s?$")


@dataclass(frozen=True)
class Scope:
    """One parsed SMART resource scope."""

    context: str
    resource: str
    perms: frozenset[str]
    restricted: bool  # v2 granular scope (`?category=...`): not a blanket grant


def parse_scope(raw: str) -> Scope | None:
    """Parse a SMART v1/v2 resource scope; None for anything else (openid, launch, ...)."""
    m = _SCOPE.match(raw)
    if not m:
        return None
    context, resource, suffix, query = m.groups()
    if suffix in _V1:
        perms = _V1[suffix]
    elif suffix and _V2_PERMS.match(suffix):
        perms = frozenset(suffix)
    else:
        return None
    return Scope(context, resource, perms, restricted=query is not None)


def _perm(interaction: str) -> str:
    perm = INTERACTIONS.get(interaction, interaction)
    if perm not in "cruds" or len(perm) != 1:
        raise ValueError(f"unknown interaction {interaction!r}")
    return perm


def scope_allows(
    scopes: Iterable[str],
    resource: str,
    interaction: str,
    contexts: Iterable[str] = CONTEXTS,
) -> bool:
    """True if any scope grants `interaction` (create/read/update/delete/search or c/r/u/d/s)."""
    perm = _perm(interaction)
    allowed_contexts = set(contexts)
    for raw in scopes:
        s = parse_scope(raw)
        if s is None or s.restricted or s.context not in allowed_contexts:
            continue
        if s.resource in ("*", resource) and perm in s.perms:
            return True
    return False


def requirement(spec: str) -> tuple[tuple[str, ...], str, str]:
    """`Verification.c` (any context) or `system/Verification.rs` -> (contexts, type, perms)."""
    context, _, rest = spec.rpartition("/")
    resource, _, perms = rest.partition(".")
    if not resource or not perms or (context and context not in CONTEXTS):
        raise ValueError(f"bad scope requirement {spec!r}")
    for p in perms:
        _perm(p)
    return ((context,) if context else CONTEXTS), resource, perms


def missing_scopes(granted: Iterable[str], required: Iterable[str]) -> list[str]:
    """The requirements (`Verification.c`, `system/Outbox.u`) the granted scopes do not meet;
    every front door (REST guards, gRPC) decides with this one rule."""
    granted = frozenset(granted)
    missing = []
    for spec in required:
        contexts, resource, perms = requirement(spec)
        if not all(scope_allows(granted, resource, p, contexts) for p in perms):
            missing.append(spec)
    return missing
