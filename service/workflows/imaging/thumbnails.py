"""Thumbnails of the checked images, kept with the verification so that a person can see what
Verity looked at: the windowed 256 px canvases of the representative frames (the same the
embedding tier sees), one per instance, described as the header describes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from service.store import verification_images
from service.vision.dicom.canvas import to_png
from service.workflows.imaging.pixels import Canvas


@dataclass(frozen=True)
class Thumbnail:
    """What a thumbnail shows, as the DICOM header says it (no patient data)."""

    number: int  # 1-based: image-<number> in verification_image
    series_number: int | None
    instance_number: int | None
    frame: int  # 0-based frame of a multi-frame instance
    modality: str | None
    body_part: str | None
    laterality: str | None

    def describe(self) -> dict[str, Any]:
        return {
            "number": self.number, "series_number": self.series_number,
            "instance_number": self.instance_number, "frame": self.frame,
            "modality": self.modality, "body_part": self.body_part,
            "laterality": self.laterality,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Thumbnail:
        return cls(
            int(data["number"]), data.get("series_number"), data.get("instance_number"),
            int(data.get("frame") or 0), data.get("modality"), data.get("body_part"),
            data.get("laterality"),
        )  # fmt: skip


def choose(canvases: Sequence[Canvas], limit: int) -> list[tuple[Thumbnail, Canvas]]:
    """The first kept frame of each instance, in series and instance order, at most `limit`."""
    first: dict[str, Canvas] = {}
    for c in canvases:
        kept = first.get(c.header.sop_uid)
        if kept is None or c.frame < kept.frame:
            first[c.header.sop_uid] = c

    def order(c: Canvas) -> tuple[Any, ...]:
        h = c.header
        return (h.series_number is None, h.series_number or 0, h.series_uid,
                h.instance_number is None, h.instance_number or 0, h.sop_uid)  # fmt: skip

    chosen = sorted(first.values(), key=order)[:limit]
    return [
        (Thumbnail(n, c.header.series_number, c.header.instance_number, c.frame,
                   c.header.modality, c.header.body_part, c.header.laterality), c)
        for n, c in enumerate(chosen, start=1)
    ]  # fmt: skip


async def keep(
    conn: psycopg.AsyncConnection, verification_id: str, chosen: Sequence[tuple[Thumbnail, Canvas]]
) -> None:
    """Store the chosen thumbnails as PNG with the verification (the caller's transaction)."""
    await verification_images.insert(conn, verification_id, [
        verification_images.StoredImage(f"image-{t.number}", "image/png", to_png(c.image))
        for t, c in chosen
    ])  # fmt: skip
