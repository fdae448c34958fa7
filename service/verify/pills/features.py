"""Per-product features of one query pill against its reference views (the inputs of the
fused score): embedding, imprint, colour and shape agreement. Pure; no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from service.verify.pills.measurements import QueryPill, ReferenceView

FEATURES = ("emb_sim", "emb_z", "colour_de", "shape_dlog", "imprint", "emb_strong")
# Similarity above this is a near-duplicate of a reference view (the same face, seen again):
# `emb_strong` = max(0, emb_sim - STRONG_SIM) lets that count for more than the linear term.
# 0.7 was the best of 0.6-0.8 on the dev photos (scripts/fit_fusion.py, leave-one-product-out).
STRONG_SIM = 0.7
# Saturating distances: beyond these, a larger distance is no more evidence against a product
# (a colour cast or a shadow in the mask produces such outliers on the right product too).
COLOUR_CAP = 20.0  # Lab distance of the dominant colours
SHAPE_CAP = 0.3  # |log aspect-ratio difference|, i.e. about 35 % longer
READ_SEPARATOR = " | "  # a reference's imprint_read may hold alternatives (two orientations)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (imprints are short: the quadratic table is cheap)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def imprint_similarity(a: str, b: str) -> float:
    """1 - normalised edit distance, token order ignored (OCR may read lines in either order)."""
    ta, tb = a.split(), b.split()
    if not ta or not tb:
        return 0.0
    best = 0.0
    for x, y in (("".join(ta), "".join(tb)), ("".join(sorted(ta)), "".join(sorted(tb)))):
        best = max(best, 1.0 - levenshtein(x, y) / max(len(x), len(y)))
    return best


def imprint_evidence(query: QueryPill, reads: Sequence[str]) -> tuple[float, float, str]:
    """Signed evidence in [-1, 1]: agreeing text > 0, different text < 0, nothing read = 0."""
    q = query.imprint_read or ""
    refs = [alt.strip() for r in reads if r for alt in r.split(READ_SEPARATOR.strip())]
    refs = [r for r in refs if r]
    if not q or not refs:
        return 0.0, 0.0, ""
    sims = [(imprint_similarity(q, r), r) for r in refs]
    sim, best = max(sims)
    reliability = min(1.0, len(q.replace(" ", "")) / 3.0) * query.imprint_confidence
    return (2.0 * sim - 1.0) * reliability, sim, best


def colour_distance(q: list[dict[str, Any]], r: list[dict[str, Any]]) -> float:
    """Share-weighted nearest-colour distance both ways (lightness counts half: exposure)."""
    if not q or not r:
        return 0.0

    def one_way(xs: list[dict[str, Any]], ys: list[dict[str, Any]]) -> float:
        total = 0.0
        for x in xs:
            total += float(x["share"]) * min(
                float(
                    np.sqrt(
                        0.25 * (x["L"] - y["L"]) ** 2
                        + (x["a"] - y["a"]) ** 2
                        + (x["b"] - y["b"]) ** 2
                    )
                )
                for y in ys
            )
        return total

    return 0.5 * (one_way(q, r) + one_way(r, q))


def product_features(query: QueryPill, views: Iterable[ReferenceView]) -> dict[str, dict[str, Any]]:
    """Raw evidence per product (max similarity / min distance over that product's views)."""
    by_product: dict[str, list[ReferenceView]] = defaultdict(list)
    for v in views:
        if not query.model_version or not v.model_version or v.model_version == query.model_version:
            by_product[v.product_id].append(v)
    out: dict[str, dict[str, Any]] = {}
    q_colours = query.features.get("colours", [])
    q_aspect = float(query.features.get("aspect", 1.0))
    for pid, pviews in by_product.items():
        mat = np.stack([v.embedding for v in pviews]).astype(np.float32)
        sims = query.embeddings @ mat.T
        best = int(np.argmax(sims.max(axis=0)))
        colour = min(colour_distance(q_colours, v.features.get("colours", [])) for v in pviews)
        shape = min(
            abs(float(np.log(q_aspect / float(v.features.get("aspect", 1.0))))) for v in pviews
        )
        colour, shape = min(colour, COLOUR_CAP), min(shape, SHAPE_CAP)
        signed, sim, read = imprint_evidence(query, [v.imprint_read or "" for v in pviews])
        out[pid] = {
            "emb_sim": float(sims.max()),
            "best_view": f"{pviews[best].image_id}/{pviews[best].view}",
            "colour_de": colour,
            "shape_dlog": shape,
            "imprint": signed,
            "imprint_similarity": sim,
            "reference_imprint": read,
        }
    sims_all = np.array([e["emb_sim"] for e in out.values()], dtype=np.float64)
    mu, sd = (float(sims_all.mean()), float(sims_all.std())) if len(sims_all) else (0.0, 1.0)
    for e in out.values():
        e["emb_z"] = (e["emb_sim"] - mu) / max(sd, 1e-3) if len(sims_all) > 2 else 0.0
        e["emb_strong"] = max(0.0, e["emb_sim"] - STRONG_SIM)
    return out
