"""Train the pill head: a WCCN projection that ignores lighting/blur/rotation nuisances.

Data recipe (references only, never a query photo): every enrolment image of a dataset in the
shared format (ref_*.jpg, else photo_1.jpg, as service.evaluation.pills.read_dataset picks them) is
augmented AUGS times — per-channel colour cast x[0.7,1.35], gamma [0.7,1.4], random rotation,
downscale of the whole frame to [0.15,1] (small far pills), JPEG quality [40,95] — and run
through the engine's own pill finder and crop pipeline, then the frozen embedder. The head
is PCA to DIM dims of the augmented embeddings, then within-class covariance normalisation
(classes = source images, ridge LAMBDA * mean eigenvalue): directions in which one pill's
augmented views vary are shrunk, so cosine similarity rests on what differs between pills.
Saved as ONNX (Sub, MatMul, L2-normalise) with a model card.

    python scripts/train_head.py [DATASET_DIR] [--out service/models/bundled]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

AUGS = 24
DIM = 128
LAMBDA = 0.1
SEED = 0
HEAD_ID = "pill-head-wccn"


def augment(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random capture condition for a whole photo."""
    x = rgb.astype(np.float32) * rng.uniform(0.7, 1.35, 3)
    x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(0.7, 1.4)
    x = np.clip(x, 0, 255).astype(np.uint8)
    h, w = x.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(0, 360)), 1.0)
    x = cv2.warpAffine(x, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
    s = float(rng.uniform(0.15, 1.0))
    if s < 0.9:
        x = cv2.resize(x, (max(32, int(w * s)), max(32, int(h * s))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", x[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))]
    )
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].copy() if ok else x


def pill_crop(rgb: np.ndarray) -> np.ndarray:
    """The engine's query crop (pill finder, colour constancy, upright, masked)."""
    from service.vision.pills.colour import apply_gains, background_gains
    from service.vision.pills.descriptors import masked, upright_crop
    from service.vision.pills.engine import COLOUR_STRENGTH
    from service.vision.pills.segment import find_pills, whole_frame_region

    region = (find_pills(rgb) or [whole_frame_region(rgb)])[0]
    corrected = apply_gains(rgb, background_gains(rgb, region.mask, COLOUR_STRENGTH))
    return masked(*upright_crop(corrected, region.mask, region.contour))


def collect(dataset: Path) -> tuple[np.ndarray, np.ndarray]:
    """Augmented embeddings of every enrolment image and their source-image labels."""
    from service.config import LimitSettings, ModelSettings
    from service.evaluation.pills import read_dataset
    from service.models.embedder import embed
    from service.models.registry import ModelRegistry
    from service.vision.pills.decode import decode_image

    registry = ModelRegistry(ModelSettings(ocr=False, head=None)).load()
    products = sorted(read_dataset(dataset), key=lambda d: d.product.id)
    enrol = [(d.product.id, path) for d in products for path in d.references]
    rng = np.random.default_rng(SEED)
    feats, labels = [], []
    for i, (_pid, path) in enumerate(enrol):
        rgb = decode_image(path.read_bytes(), LimitSettings())
        crops = [pill_crop(augment(rgb, rng)) for _ in range(AUGS)]
        feats.append(embed(registry, "efficientnet-lite0", crops))
        labels += [i] * AUGS
    return np.concatenate(feats), np.asarray(labels)


def fit(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and projection: PCA to DIM, then W^-1/2 of the within-image covariance."""
    mu = x.mean(axis=0)
    xc = x - mu
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    pca = vt[:DIM].T
    z = xc @ pca
    within = np.zeros((DIM, DIM))
    for g in np.unique(labels):
        zg = z[labels == g] - z[labels == g].mean(axis=0)
        within += zg.T @ zg
    within /= len(z)
    vals, vecs = np.linalg.eigh(within + LAMBDA * np.trace(within) / DIM * np.eye(DIM))
    return mu.astype(np.float32), (pca @ vecs @ np.diag(vals**-0.5) @ vecs.T).astype(np.float32)


def export(mu: np.ndarray, proj: np.ndarray, out: Path, recipe: dict[str, object]) -> Path:
    """ONNX graph: y = normalize((x - mu) @ P), dynamic batch; card beside it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Sub", ["embedding", "mu"], ["centred"]),
        helper.make_node("MatMul", ["centred", "proj"], ["raw"]),
        helper.make_node("LpNormalization", ["raw"], ["projected"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        HEAD_ID,
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", proj.shape[0]])],
        [helper.make_tensor_value_info("projected", TensorProto.FLOAT, ["N", proj.shape[1]])],
        [numpy_helper.from_array(mu, "mu"), numpy_helper.from_array(proj, "proj")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = out / f"{HEAD_ID}.onnx"
    onnx.save(model, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    card = {
        "id": HEAD_ID,
        "version": f"{HEAD_ID}@{sha[:12]}",
        "licence": "Apache-2.0",
        "files": [{"path": path.name, "sha256": sha, "bytes": path.stat().st_size}],
        "applies_to": "efficientnet-lite0",
        "input": {
            "name": "embedding",
            "shape": ["N", int(proj.shape[0])],
            "dtype": "float32",
            "normalisation": "unit-length efficientnet-lite0 embedding",
        },
        "output": {
            "name": "projected",
            "shape": ["N", int(proj.shape[1])],
            "dim": int(proj.shape[1]),
            "meaning": "unit-length WCCN-projected embedding",
        },
        "how_made": "scripts/train_head.py (numpy PCA + WCCN, exported with onnx.helper)",
        "training_data": recipe,
    }
    path.with_suffix(".card.json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    root = Path(__file__).resolve().parents[1]
    parser.add_argument(
        "dataset", nargs="?", type=Path, default=root / ".." / "shared" / "data" / "pills"
    )
    parser.add_argument("--out", type=Path, default=root / "service" / "models" / "bundled")
    args = parser.parse_args()
    x, labels = collect(args.dataset)
    mu, proj = fit(x, labels)
    recipe = {
        "dataset": "shared/data/pills enrolment images only (refs, else photo_1)",
        "images": int(labels.max() + 1),
        "augmentations_per_image": AUGS,
        "seed": SEED,
        "pca_dim": DIM,
        "ridge": LAMBDA,
    }
    print(export(mu, proj, args.out, recipe))


if __name__ == "__main__":
    main()
