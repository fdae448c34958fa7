"""Orthanc WADO-RS alone, through Verity's DicomWebClient: the floor the imaging benchmark
compares against. A CT series of N instances is built from the real slices of a dataset case
(new SOP Instance UIDs, InstanceNumber and slice position; pixels as stored), STOWed into a
fresh Orthanc, then timed: QIDO-RS series list, WADO-RS metadata of the series, and retrieve
of every instance as stored, at concurrency 1 and at the configured concurrency.

    python bench/bench_dicomweb.py --instances 10,100 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` beside `service`

from service.config import PacsSettings  # noqa: E402
from service.fhir.dicomweb import create_dicomweb_client  # noqa: E402
from tests.conftest import SHARED_DATA  # noqa: E402
from tests.servers.orthanc import OrthancServer, start_orthanc  # noqa: E402

SOURCE = SHARED_DATA / "studies" / "dev-041" / "dicom"  # 9 CT slices, JPEG-LS lossless


def build_series(n: int, out: Path) -> tuple[str, list[Path]]:
    """N instances of one new study/series, cycling over the real slices."""
    slices = [pydicom.dcmread(p) for p in sorted(SOURCE.glob("*.dcm"))]
    study, series = generate_uid(), generate_uid()
    paths = []
    for i in range(n):
        ds = slices[i % len(slices)]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        if "ImagePositionPatient" in ds:
            x, y, _ = ds.ImagePositionPatient
            ds.ImagePositionPatient = [x, y, -100.0 + i * 1.0]
        path = out / f"{i:05d}.dcm"
        ds.save_as(path)
        paths.append(path)
    return study, paths


async def run(orthanc: OrthancServer, n: int, concurrency: int, work: Path) -> None:
    folder = work / f"series-{n}"
    folder.mkdir()
    study, paths = build_series(n, folder)
    for i in range(0, n, 50):
        orthanc.stow(paths[i : i + 50])
    mb = sum(p.stat().st_size for p in paths) / 1e6
    for c in sorted({1, concurrency}):
        settings = PacsSettings(base_url=orthanc.base_url, concurrency=c)
        async with await create_dicomweb_client(orthanc.base_url, settings) as client:
            t0 = time.perf_counter()
            (series,) = await client.series(study)
            t1 = time.perf_counter()
            headers = await client.metadata(study, series.uid)
            t2 = time.perf_counter()
            await asyncio.gather(
                *(client.retrieve(study, series.uid, h.SOPInstanceUID) for h in headers)
            )
            t3 = time.perf_counter()
        assert series.instances == len(headers) == n
        print(
            f"N={n:4d} ({mb:6.1f} MB) concurrency={c}: list {1e3 * (t1 - t0):6.1f} ms, "
            f"metadata {1e3 * (t2 - t1):7.1f} ms, retrieve all {t3 - t2:6.2f} s "
            f"({1e3 * (t3 - t2) / n:5.1f} ms/instance wall), "
            f"{n / (t3 - t2):6.1f} instances/s, {n / (t3 - t0):6.1f} instances/s end to end"
        )


async def main(sizes: list[int], concurrency: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-dicomweb-"))
    orthanc = start_orthanc(work / "orthanc")
    try:
        print(f"Orthanc WADO-RS via DicomWebClient, series built from {SOURCE.parent.name}")
        for n in sizes:
            await run(orthanc, n, concurrency, work)
    finally:
        orthanc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default="10,100,500")
    parser.add_argument("--concurrency", type=int, default=PacsSettings().concurrency)
    args = parser.parse_args()
    asyncio.run(main([int(x) for x in args.instances.split(",")], args.concurrency))
