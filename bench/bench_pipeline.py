"""Per-photo latency of the pill pipeline, stage by stage, next to pure ONNX inference.

    python bench/bench_pipeline.py [DATASET_DIR] [--photos N]

The product's own path (settings from the environment, the library workflow, the pgvector
shortlist and fused ranking) on the evaluation harness's throwaway database. Prints figures
only (no asserts): machines differ. RSS is read after all models are loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.config import load_settings  # noqa: E402
from service.errors import ClientError  # noqa: E402
from service.evaluation.harness import evaluation_database  # noqa: E402
from service.evaluation.pills import read_dataset  # noqa: E402
from service.models.embedder import preprocess, run_onnx  # noqa: E402
from service.models.ocr import ocr_input, relief  # noqa: E402
from service.store.pool import Connect, reuse  # noqa: E402
from service.vision.pills.decode import decode_image  # noqa: E402
from service.vision.pills.descriptors import masked, ocr_band, upright_crop  # noqa: E402
from service.vision.pills.engine import QUERY_TURNS  # noqa: E402
from service.vision.pills.segment import find_pills  # noqa: E402
from service.workflows.pills.enrol import enrol_products  # noqa: E402
from service.workflows.pills.service import PillService, load_pill_service  # noqa: E402


def rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


async def run(dataset: Path, photos: int) -> None:
    rss0 = rss_mb()
    t0 = time.perf_counter()
    settings = load_settings()
    service = load_pill_service(settings)
    engine = service.engine
    load_s = time.perf_counter() - t0
    print(f"models loaded in {load_s:.2f} s; RSS {rss0:.0f} MB -> {rss_mb():.0f} MB")
    for status in engine.registry.status():
        print(f"  {status}")
    products = read_dataset(dataset)
    queries = [path for d in products for path in d.queries]
    async with evaluation_database(settings) as conn:
        connect = reuse(conn)
        t0 = time.perf_counter()
        entries = ((d.product, d.reference_images()) for d in products)
        done = await enrol_products(service, connect, entries)
        print(f"enrolled {done.images} images in {time.perf_counter() - t0:.2f} s")
        await measure(service, connect, queries[:photos])


async def measure(service: PillService, connect: Connect, queries: list[Path]) -> None:
    engine = service.engine
    stages: dict[str, list[float]] = {}
    pure_embed: list[float] = []
    pure_ocr: list[float] = []
    ocr_model = engine.registry.get("ocr").runtime if engine.registry.settings.ocr else None
    emb_model = engine.registry.get(engine.embedder)
    skipped = 0
    for path in queries:
        data = path.read_bytes()
        t_total = time.perf_counter()
        try:
            result = await service.analyse(data)
        except ClientError:
            skipped += 1  # no pill / too many pills: nothing to rank
            continue
        t = time.perf_counter()
        for pill, crops in zip(result.pills, result.crops, strict=True):
            await service.rank(connect, pill, crops=crops)
        result.timings["rank"] = (time.perf_counter() - t) * 1000
        result.timings["total"] = (time.perf_counter() - t_total) * 1000
        for k, v in result.timings.items():
            stages.setdefault(k, []).append(v)
        # the same models on the same input, without the pipeline around them
        rgb = decode_image(data, engine.limits)
        region = find_pills(rgb)[0]
        crops = [upright_crop(rgb, region.mask, region.contour, t) for t in QUERY_TURNS]
        batch = preprocess([masked(c, m) for c, m in crops], emb_model.input_size)
        t = time.perf_counter()
        run_onnx(emb_model, batch)
        pure_embed.append((time.perf_counter() - t) * 1000)
        if ocr_model is not None:
            # the engine's passes at the engine's sizes: plain, then relief if nothing was read
            ms = engine.registry.settings
            band = ocr_band(*crops[0])
            plain = ocr_input(band, ms.ocr_side_px, ms.ocr_max_side_px)
            t = time.perf_counter()
            found, _ = ocr_model(plain, text_score=0.5)
            if not found and ms.ocr_relief_side_px:
                ocr_model(ocr_input(relief(band), ms.ocr_relief_side_px, ms.ocr_max_side_px))
            pure_ocr.append((time.perf_counter() - t) * 1000)
    n = len(stages.get("total", []))
    print(f"RSS after enrolment (sessions warmed up): {rss_mb():.0f} MB")
    print(f"\nper photo over {n} query photos, {skipped} refused (ms)   p50      p95")
    for k in ("decode", "find", "describe", "embed", "ocr", "rank", "total"):
        if k in stages:
            print(f"  pipeline {k:<24} {pct(stages[k], 50):8.1f} {pct(stages[k], 95):8.1f}")
    print(
        f"  pure ONNX embed (batch {len(QUERY_TURNS)})        "
        f"{pct(pure_embed, 50):8.1f} {pct(pure_embed, 95):8.1f}"
    )
    if pure_ocr:
        print(
            f"  pure RapidOCR (plain [+ relief]) {pct(pure_ocr, 50):8.1f} {pct(pure_ocr, 95):8.1f}"
        )
    print(f"\nper-model call stats: {engine.registry.latency()}")
    print(f"RSS at end: {rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "dataset", nargs="?", type=Path, default=ROOT / ".." / "shared" / "data" / "pills"
    )
    parser.add_argument("--photos", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(run(args.dataset, args.photos))


if __name__ == "__main__":
    main()
