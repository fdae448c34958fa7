"""Per file of the reference DICOM set: pure pydicom `pixel_array` of the representative frames
(the floor: decoding only) next to `decode_image` (decode + LUTs/window + uint8) and
`decode_image` + `fingerprint` of every returned frame. Median of a few runs, in ms.

    python bench/bench_dicom_decode.py [--dir ../shared/data/dicom] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.pixels.decoders.base import get_decoder

from service.config import ImagingSettings, LimitSettings
from service.vision.dicom.decode import decode_image, read_part10, representative_indices
from service.vision.dicom.fingerprint import fingerprint

DEFAULT_DIR = next(
    (
        p / "shared" / "data" / "dicom"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "dicom").is_dir()
    ),
    Path("../shared/data/dicom"),
)


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _floor(ds: Dataset, decoder: Any, indices: tuple[int, ...], plugin: str) -> None:
    for i in indices:
        decoder.as_array(ds, index=i, decoding_plugin=plugin)


def _decode_and_fingerprint(ds: Dataset, frames_wanted: int, frame_limit: int) -> None:
    for frame in decode_image(ds, max_frames=frames_wanted, frame_limit=frame_limit).frames:
        fingerprint(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    frames_wanted = ImagingSettings().representative_frames
    frame_limit = LimitSettings().max_dicom_frames
    print(f"{'file':52s} {'syntax':28s} {'frames':>6s} {'pydicom':>9s} {'decode':>9s} {'+fp':>9s}")
    totals = [0.0, 0.0, 0.0]
    for path in sorted(args.dir.rglob("*.dcm")):
        ds = read_part10(path.read_bytes())
        syntax = ds.file_meta.TransferSyntaxUID
        total = int(ds.get("NumberOfFrames", 1) or 1)
        indices = representative_indices(total, frames_wanted)
        decoder = get_decoder(syntax)
        plugin = "pylibjpeg" if syntax.is_compressed else ""

        steps = (
            partial(_floor, ds, decoder, indices, plugin),
            partial(decode_image, ds, max_frames=frames_wanted, frame_limit=frame_limit),
            partial(_decode_and_fingerprint, ds, frames_wanted, frame_limit),
        )
        row = [_median_ms(fn, args.repeat) for fn in steps]
        totals = [t + r for t, r in zip(totals, row, strict=True)]
        name = str(path.relative_to(args.dir))
        print(
            f"{name[:52]:52s} {syntax.name[:28]:28s} {len(indices):>6d}"
            + "".join(f" {v:8.1f}" for v in row)
        )
    print(f"{'total (ms)':52s} {'':28s} {'':>6s}" + "".join(f" {v:8.1f}" for v in totals))


if __name__ == "__main__":
    main()
