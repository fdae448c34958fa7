"""Fit the fused-score coefficients (service/models/bundled/pill-fusion.json) and report CV.

Model: conditional logit over the library with a "none of them" option (the form `rank` uses):
P(query is product j) = exp(l_j) / (1 + sum_k exp(l_k)), l_j = bias + w . evidence_j, with the
features of service.verify.pills.features.FEATURES. Seven numbers, fitted by Newton's method with an
L2 ridge on standardised features, on the queries of a dataset in the shared format, as the
product's own evaluation (`verity evaluate pills`, service.evaluation.harness) ranks them: the same
pgvector shortlist, the features each candidate's evidence records (4 decimals), the
environment's settings. Reported: leave-one-product-out cross-validation (every
query scored by coefficients fitted without any photo of its product), so the choice of
match threshold is made on held-out scores, and the in-sample figures for comparison.

    python scripts/fit_fusion.py [DATASET_DIR] [--out service/models/bundled/pill-fusion.json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.config import load_settings  # noqa: E402
from service.evaluation.pills import evaluate_pills, read_dataset  # noqa: E402
from service.verify.pills.features import FEATURES  # noqa: E402
from service.verify.pills.ranking import interchangeable_group  # noqa: E402
from service.workflows.pills.service import product_ref  # noqa: E402

RIDGE = 1.0
THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8)
Sample = tuple[str, list[str], np.ndarray]  # true product, candidate ids, feature matrix


def collect(dataset: Path) -> tuple[list[Sample], list[str], dict[str, Any], list[str]]:
    """Feature matrices of every query's candidates from the evaluation harness (queries where
    no pill was found are skipped), the enrolled products, their clinical-drug groups, and the
    true product of every query (refused ones included). The fusion being fitted plays no part:
    the shortlist and the features do not depend on it (nor does a cascade unless configured)."""
    result = asyncio.run(evaluate_pills(dataset, load_settings(), details=True))
    samples: list[Sample] = []
    for row in result["rows"]:
        if row["error"] or not row["ranked"]:
            continue
        ids = sorted(c.product_id for c in row["ranked"])
        ev = {c.product_id: c.evidence for c in row["ranked"]}
        x = np.array([[float(ev[p][f]) for f in FEATURES] for p in ids])
        samples.append((row["product"], ids, x))
    products = read_dataset(dataset)
    library = sorted(d.product.id for d in products if d.references)
    drug = {d.product.id: interchangeable_group(product_ref(d.product)) for d in products}
    return samples, library, drug, [row["product"] for row in result["rows"]]


def _objective(
    theta: np.ndarray, data: list[tuple[str, list[str], np.ndarray]]
) -> tuple[float, np.ndarray, np.ndarray]:
    """Negative log-likelihood (+ ridge on weights), its gradient and Hessian."""
    n = len(theta)
    nll, grad, hess = 0.0, np.zeros(n), np.zeros((n, n))
    for pid, ids, z in data:
        logits = z @ theta
        top = max(float(logits.max()), 0.0)
        e = np.exp(logits - top)
        norm = np.exp(-top) + e.sum()
        p = e / norm
        target = np.array([i == pid for i in ids], dtype=np.float64)
        nll -= float(target @ logits) - target.sum() * (top + np.log(norm))
        grad += z.T @ (p - target)
        hess += z.T @ (np.diag(p) - np.outer(p, p)) @ z
    reg = np.r_[np.full(n - 1, 2 * RIDGE), 0.0]
    nll += RIDGE * float(theta[:-1] @ theta[:-1])
    return nll, grad + reg * np.r_[theta[:-1], 0.0], hess + np.diag(reg)


def fit(samples: list[Sample]) -> tuple[np.ndarray, float]:
    """Damped Newton on the open-set conditional-logit likelihood (+ ridge)."""
    allx = np.concatenate([x for _, _, x in samples])
    mu, sd = allx.mean(axis=0), allx.std(axis=0) + 1e-9
    data = [(pid, ids, np.hstack([(x - mu) / sd, np.ones((len(x), 1))])) for pid, ids, x in samples]
    theta = np.zeros(len(FEATURES) + 1)  # standardised weights, then bias
    for _ in range(50):
        nll, grad, hess = _objective(theta, data)
        step = np.linalg.solve(hess + 1e-6 * np.eye(len(theta)), grad)
        scale = 1.0
        while scale > 1e-4 and _objective(theta - scale * step, data)[0] > nll:
            scale /= 2  # backtrack until the likelihood improves
        theta = theta - scale * step
        if float(np.abs(scale * step).max()) < 1e-7:
            break
    weights = theta[:-1] / sd
    return weights, float(theta[-1] - (theta[:-1] * mu / sd).sum())


def posterior(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    logits = x @ weights + bias
    top = max(float(logits.max()), 0.0)
    e = np.exp(logits - top)
    return e / (np.exp(-top) + e.sum())


def report(
    samples: list[Sample],
    probs: list[np.ndarray],
    library: list[str],
    drug: dict[str, Any],
    queries: list[str],
) -> dict[str, dict[str, float]]:
    """Top-1 and, per threshold, TAR/FAR over all (query, prescribed) pairs of the protocol.

    `queries` holds the true product of every query photo, refused ones included, so the
    denominators are those of service.evaluation.harness: identification queries are those of an
    enrolled product, positives are the (query, library product) pairs of the same clinical
    drug, and a top-1 hit is a winning clinical drug equal to the query's.
    """
    out: dict[str, dict[str, float]] = {}
    n_id = sum(1 for pid in queries if pid in library)
    pos = sum(1 for pid in queries for y in library if drug[y] == drug[pid])
    neg = len(queries) * len(library) - pos
    for thr in THRESHOLDS:
        tp = fp = hits = 0
        for (pid, ids, _), p in zip(samples, probs, strict=True):
            group: dict[Any, float] = {}
            for i, prob in zip(ids, p, strict=True):
                group[drug[i]] = group.get(drug[i], 0.0) + float(prob)
            best = max(group, key=lambda g: group[g])
            hits += pid in library and best == drug[pid]
            for y in library:  # MATCH: the most probable clinical drug, clearing thr (as `rank`)
                if drug[y] == best and group[best] >= thr:
                    tp += drug[y] == drug[pid]
                    fp += drug[y] != drug[pid]
        out[f"{thr:.2f}"] = {
            "top1": round(hits / max(n_id, 1), 4),
            "tar": round(tp / max(pos, 1), 4),
            "far": round(fp / max(neg, 1), 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "dataset", nargs="?", type=Path, default=ROOT / ".." / "shared" / "data" / "pills"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "service" / "models" / "bundled" / "pill-fusion.json"
    )
    args = parser.parse_args()
    samples, library, drug, queries = collect(args.dataset)
    cv_probs: list[np.ndarray] = [np.zeros(0)] * len(samples)
    for held in sorted({s[0] for s in samples}):
        w, b = fit([s for s in samples if s[0] != held])
        for i, s in enumerate(samples):
            if s[0] == held:
                cv_probs[i] = posterior(s[2], w, b)
    weights, bias = fit(samples)
    result = {
        "features": list(FEATURES),
        "weights": [round(float(v), 6) for v in weights],
        "bias": round(bias, 6),
        "ridge": RIDGE,
        "fitted_on": f"{args.dataset.name}: {len(samples)} queries, {len(library)} products",
        "cv_leave_one_product_out": report(samples, cv_probs, library, drug, queries),
        "in_sample": report(
            samples, [posterior(s[2], weights, bias) for s in samples], library, drug, queries
        ),
    }
    digest = hashlib.sha256(json.dumps(result["weights"] + [result["bias"]]).encode()).hexdigest()
    result["version"] = f"pill-fusion@{digest[:12]}"
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
