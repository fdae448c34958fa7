"""A transaction Bundle larger than the FHIR server accepts -> parts it does accept, in order.

Some servers cap a transaction (Medplum: 8 entries once any entry is a conditional create).
The outbox keeps the one whole Bundle; the relay cuts it at delivery time. `plan_parts` orders
the entries so each comes after every entry it references by `urn:uuid:` fullUrl, keeping the
builder's order where it can, and cuts that order into parts of at most `max_entries`.
`part_bundle` rewrites a reference to an entry of an earlier part (in a resource, or as the
value of a conditional create's `ifNoneExist`) to the `Type/id` the server returned for it
(`located`); references within the part stay `urn:uuid:` for the server to resolve. Every
entry stays a conditional create, so re-sending the earlier parts after a lost response or a
crash matches what the server created instead of creating it again.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from service.errors import FhirUnavailable, InternalError

Resource = dict[str, Any]
Part = tuple[int, ...]  # indexes into the Bundle's entries, in posting order

_URN_UUID = "urn:uuid:"


def plan_parts(entries: Sequence[Resource], max_entries: int) -> list[Part]:
    """The parts to post in order; one part in the builder's order when the Bundle fits.

    Raises InternalError (Verity's own bug) for a reference to a `urn:uuid:` that no entry
    has, or for entries that reference each other in a cycle (no order could resolve them).
    """
    if max_entries < 1:
        raise ValueError("max_entries must be at least 1")
    order = _dependency_order(entries)
    if len(entries) <= max_entries:
        return [tuple(range(len(entries)))]
    return [tuple(order[i : i + max_entries]) for i in range(0, len(order), max_entries)]


def part_bundle(entries: Sequence[Resource], part: Part, located: Mapping[str, str]) -> Resource:
    """The transaction Bundle of one part, references to earlier parts resolved to `Type/id`."""
    inside = {entries[i].get("fullUrl") for i in part}
    out = []
    for i in part:
        entry = copy.deepcopy(entries[i])
        for holder in _reference_holders(entry.get("resource") or {}):
            target = holder["reference"]
            if target.startswith(_URN_UUID) and target not in inside:
                if target not in located:
                    raise FhirUnavailable(
                        "the FHIR server gave no location for a resource a later part needs"
                    )
                holder["reference"] = located[target]
        request = entry.get("request") or {}
        query = request.get("ifNoneExist")
        if isinstance(query, str) and _URN_UUID in query:
            request["ifNoneExist"] = _resolve_query(query, inside, located)
        out.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": out}


def _resolve_query(query: str, inside: set[Any], located: Mapping[str, str]) -> str:
    """A conditional-create query whose `urn:uuid:` values name entries of earlier parts, with
    those values replaced by the `Type/id` the server gave them (e.g. `target=` a Provenance's
    first target); values of entries in this part stay for the server to resolve."""
    params = []
    for param in query.split("&"):
        name, eq, value = param.partition("=")
        if eq and value.startswith(_URN_UUID) and value not in inside:
            if value not in located:
                raise FhirUnavailable(
                    "the FHIR server gave no location for a resource a later part needs"
                )
            value = located[value]
        params.append(f"{name}{eq}{value}")
    return "&".join(params)


def locations(entries: Sequence[Resource], part: Part, response: Resource) -> dict[str, str]:
    """fullUrl -> `Type/id` of each entry of `part` the server answered with a location."""
    answers = response.get("entry") or []
    if len(answers) != len(part):
        raise FhirUnavailable(
            f"the FHIR server answered {len(answers)} entries to a transaction of {len(part)}"
        )
    found = {}
    for i, answer in zip(part, answers, strict=True):
        full_url = entries[i].get("fullUrl")
        where = reference_of((answer.get("response") or {}).get("location"))
        if full_url and where:
            found[str(full_url)] = where
    return found


def reference_of(location: object) -> str | None:
    """`Type/id` from a transaction-response location (relative or absolute, with or without
    its `_history/vid`); None when there is none."""
    if not isinstance(location, str) or not location:
        return None
    path = location.split("?", 1)[0].rstrip("/").split("/")
    if "_history" in path:
        path = path[: path.index("_history")]
    if len(path) < 2 or not path[-2][:1].isupper() or not path[-1]:
        return None
    return f"{path[-2]}/{path[-1]}"


def _dependency_order(entries: Sequence[Resource]) -> list[int]:
    """Kahn's topological sort taking the lowest ready index first (the builder's order)."""
    index = {str(e["fullUrl"]): i for i, e in enumerate(entries) if e.get("fullUrl")}
    needs: list[set[int]] = []
    for i, entry in enumerate(entries):
        deps = set()
        for target in _urn_targets(entry):
            if not target.startswith(_URN_UUID):
                continue
            if target not in index:
                raise InternalError(
                    f"Verity built a transaction whose entry {i} references an entry it lacks"
                )
            if index[target] != i:
                deps.add(index[target])
        needs.append(deps)
    needed_by: list[list[int]] = [[] for _ in entries]
    for i, deps in enumerate(needs):
        for d in deps:
            needed_by[d].append(i)
    waiting = [len(deps) for deps in needs]
    ready = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in needed_by[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(entries):
        raise InternalError("Verity built a transaction whose entries reference each other")
    return order


def _urn_targets(entry: Resource) -> list[str]:
    """Every reference of an entry: in its resource, and as values of its `ifNoneExist`."""
    found = [str(h["reference"]) for h in _reference_holders(entry.get("resource") or {})]
    query = str((entry.get("request") or {}).get("ifNoneExist") or "")
    found += [v for p in query.split("&") if (v := p.partition("=")[2]).startswith(_URN_UUID)]
    return found


def _reference_holders(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in a resource with a string `reference` (a FHIR Reference), depth first."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _reference_holders(value)
    elif isinstance(node, list):
        for item in node:
            yield from _reference_holders(item)
