"""Copy the screenshots the browser tests took (build/screenshots, or $VERITY_SCREENSHOTS) that
docs/web.md shows into docs/img, downscaled (phone 360 px wide, desktop 960 px wide).

Run after `pytest tests/web/browser`; look at the pictures before committing them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("VERITY_SCREENSHOTS", ROOT / "build" / "screenshots"))
DOCS = ROOT / "docs" / "img"
WIDTH = {"phone": 360, "desktop": 960}
# docs/img name -> the browser tests' screenshot name (without -phone / -desktop)
SHOWN = {
    "web-start": "pill-match-start",
    "web-match": "pill-match-result",
    "web-mismatch": "pill-mismatch-decided",
    "web-audit": "audit-search",
    "web-audit-detail": "audit-detail",
    "web-imaging": "imaging-decided",
}


def main() -> int:
    missing = []
    for doc, shot in SHOWN.items():
        for device, width in WIDTH.items():
            src = SHOTS / f"{shot}-{device}.png"
            if not src.exists():
                missing.append(src.name)
                continue
            image = Image.open(src)
            height = round(image.height * width / image.width)
            small = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
            # 256 colours: flat page colours survive, the file is a third of the size
            small.quantize(256, dither=Image.Dither.NONE).save(
                DOCS / f"{doc}-{device}.png", optimize=True
            )
    if missing:
        print("not found (run the browser tests first):", ", ".join(missing), file=sys.stderr)
        return 1
    print(f"{len(SHOWN) * len(WIDTH)} screenshots written to {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
