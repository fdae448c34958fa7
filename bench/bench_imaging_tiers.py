"""Per-image cost of each tier of an imaging-study check on a labelled studies folder (default:
the dev studies), through the product's own check path on a throwaway archive, next to the
floors: pure pydicom decoding of the same files, `decode_image` (decode + LUTs/window), and
pure ONNX inference of the very canvases the embedding tier embedded. Also the share of
studies that reached each tier.

    python bench/bench_imaging_tiers.py [--dataset ../shared/data/studies] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset
from pydicom.pixels.decoders.base import get_decoder

from service.config import Settings, load_settings
from service.evaluation.harness import evaluation_database
from service.evaluation.studies import StudyProtocol, read_case, with_dataset_issuers
from service.models.embedder import preprocess, run_onnx
from service.store.pool import reuse
from service.vision.dicom.canvas import from_png
from service.vision.dicom.decode import decode_image, read_part10, representative_indices
from service.workflows.imaging.check import check_study
from service.workflows.imaging.sources import folder_source

DEFAULT_DATASET = next(
    (
        p / "shared" / "data" / "studies"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "studies").is_dir()
    ),
    Path("../shared/data/studies"),
)
TIERS = ("headers", "fingerprints", "embeddings")


def _ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall ms of `fn()` over `repeat` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _pure_decode(ds: Dataset, decoder: Any, indices: tuple[int, ...], plugin: str) -> None:
    for i in indices:
        decoder.as_array(ds, index=i, decoding_plugin=plugin)


def decode_floors(
    files: list[Path], settings: Settings, repeat: int
) -> tuple[list[float], list[float]]:
    """Per file: pure pydicom decoding of its representative frames, and `decode_image`."""
    frames = settings.imaging.representative_frames
    limit = settings.limits.max_dicom_frames
    pure: list[float] = []
    display: list[float] = []
    for path in files:
        try:
            ds = read_part10(path.read_bytes())
            syntax = ds.file_meta.TransferSyntaxUID
            decoder = get_decoder(syntax)
            indices = representative_indices(int(ds.get("NumberOfFrames", 1) or 1), frames)
            plugin = "pylibjpeg" if syntax.is_compressed else ""
            pure.append(_ms(partial(_pure_decode, ds, decoder, indices, plugin), repeat))
            display.append(
                _ms(partial(decode_image, ds, max_frames=frames, frame_limit=limit), repeat)
            )
        except Exception:  # noqa: BLE001 - the dataset's deliberately unreadable files
            continue
    return pure, display


async def run(dataset: Path, settings: Settings, repeat: int) -> None:
    settings = with_dataset_issuers(settings)
    protocol = StudyProtocol(dataset, settings)
    embedder = protocol.embedder
    assert embedder is not None, "the content tier is off (imaging.content.enabled)"
    per_image: dict[str, list[float]] = defaultdict(list)  # tier -> ms per image, per study
    reached: dict[str, int] = defaultdict(int)
    model_ms: dict[str, list[float]] = defaultdict(list)
    model_cpu: dict[str, list[float]] = defaultdict(list)
    canvases: list[np.ndarray] = []
    files: list[Path] = []
    async with evaluation_database(settings) as conn:
        connect = reuse(conn)
        t0 = time.perf_counter()
        await protocol.prepare(connect)
        enrol_s = time.perf_counter() - t0
        for case in protocol.cases:
            files += sorted((case.folder / "dicom").glob("*.dcm"))
            order = await read_case(case.folder)
            source = folder_source(case.folder / "dicom", settings.pacs)
            checked = await check_study(settings, order, source, connect, embedder=embedder)
            v = checked.verification
            instances = max(v.counts.instances_found, 1)
            for tier in TIERS:
                if tier not in v.tiers:
                    continue
                reached[tier] += 1
                models = v.tiers[tier].get("models", {})
                images = sum(m["images"] for m in models.values()) if tier == "embeddings" else 0
                per_image[tier].append(v.tiers[tier]["wall_ms"] / (images or instances))
                for name, cost in models.items():
                    if cost["images"]:
                        model_ms[name].append(cost["wall_ms"] / cost["images"])
                        model_cpu[name].append(cost["cpu_ms"] / cost["images"])
            canvases += [from_png(record.canvas_png) for record, _ in checked.images]
    n = len(protocol.cases)
    print(f"{n} studies, {len(files)} DICOM files; archive enrolled in {enrol_s:.1f} s"
          f" ({protocol.enrolled} images); models {', '.join(embedder.names)}\n")  # fmt: skip
    print(f"{'step':<44} {'studies':>8} {'share':>6} {'p50 ms/img':>11} {'mean ms/img':>12}")

    def line(name: str, values: list[float], studies: int | None = None) -> None:
        count = f"{studies:>8} {studies / n:>6.2f}" if studies is not None else f"{'':>8} {'':>6}"
        if values:
            print(f"{name:<44} {count} {statistics.median(values):>11.2f} "
                  f"{float(np.mean(values)):>12.2f}")  # fmt: skip

    line("tier headers (per instance)", per_image["headers"], reached["headers"])
    line("tier fingerprints: decode+print+lookup (/inst)", per_image["fingerprints"],
         reached["fingerprints"])  # fmt: skip
    line("tier embeddings (per embedded image)", per_image["embeddings"], reached["embeddings"])
    for name in embedder.names:
        line(f"  of which {name} inference, wall", model_ms[name])
        line(f"  of which {name} inference, CPU", model_cpu[name])
    pure, display = decode_floors(files, settings, repeat)
    line("floor: pydicom decode only (per file)", pure)
    line("floor: decode_image, LUT/window (per file)", display)
    for name in embedder.names:
        model = embedder.registry.get(name)
        batches = [preprocess([c], model.input_size) for c in canvases]
        floor = [_ms(partial(run_onnx, model, b), repeat) for b in batches]
        line(f"floor: {name} run_onnx ({len(canvases)} canvases)", floor)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--repeat", type=int, default=3, help="runs per floor measurement (median)")
    args = ap.parse_args()
    asyncio.run(run(args.dataset, load_settings(), args.repeat))


if __name__ == "__main__":
    main()
