"""The demo library Verity makes itself: rendered pills with imprints (studio references and
"phone photos" with other light, background and angle), look-alikes included, and orders."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from service.store.products import Product
from service.verify.pills.catalog import Ingredient
from service.verify.pills.orders import NDC


@dataclass(frozen=True)
class DemoPill:
    product: Product
    colour: tuple[int, int, int]
    shape: str  # round / oval / capsule
    size: tuple[int, int]  # px at the reference scale


def _p(pid: str, name: str, strength: str, ndc: str, imprint: str, labeler: str) -> Product:
    return Product(
        id=pid, name=f"{name.title()} {strength} tablet", ndcs=[ndc],
        ingredients=[Ingredient(name, strength)], dose_form="tablet", imprint=imprint,
        imprint_source="label", labeler=labeler,
    )  # fmt: skip


DEMO_PILLS = [
    DemoPill(_p("demo-metformin-500-a", "METFORMIN", "500 mg", "99990-0001-01", "M 500",
                "Demo Labs"), (246, 246, 240), "oval", (300, 150)),
    DemoPill(_p("demo-metformin-500-b", "METFORMIN", "500 mg", "99991-0001-01", "TV 48",
                "Other Generics"), (250, 250, 250), "round", (190, 190)),
    DemoPill(_p("demo-amlodipine-5", "AMLODIPINE", "5 mg", "99990-0002-01", "A 5",
                "Demo Labs"), (248, 248, 244), "round", (180, 180)),
    DemoPill(_p("demo-lisinopril-10", "LISINOPRIL", "10 mg", "99990-0003-01", "L 10",
                "Demo Labs"), (236, 150, 170), "round", (170, 170)),
    DemoPill(_p("demo-levothyroxine-112", "LEVOTHYROXINE", "112 mcg", "99990-0004-01", "L 112",
                "Demo Labs"), (226, 140, 160), "round", (165, 165)),
    DemoPill(_p("demo-simvastatin-40", "SIMVASTATIN", "40 mg", "99990-0005-01", "S 40",
                "Demo Labs"), (180, 40, 45), "oval", (280, 140)),
    DemoPill(_p("demo-omeprazole-20", "OMEPRAZOLE", "20 mg", "99990-0006-01", "OM 20",
                "Demo Labs"), (120, 70, 140), "capsule", (320, 120)),
]  # fmt: skip


def _pill_layer(pill: DemoPill, scale: float) -> Image.Image:
    """The pill alone on a transparent layer, with shading and its imprint."""
    w, h = (max(8, int(v * scale)) for v in pill.size)
    layer = Image.new("RGBA", (w + 8, h + 8), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    box = (4, 4, w + 4, h + 4)
    if pill.shape == "capsule":
        light = tuple(min(255, c + 70) for c in pill.colour)
        draw.rounded_rectangle(box, radius=h // 2, fill=(*light, 255))
        half = Image.new("L", layer.size, 0)
        ImageDraw.Draw(half).rounded_rectangle(box, radius=h // 2, fill=255)
        ImageDraw.Draw(half).rectangle((4 + w // 2, 0, w + 8, h + 8), fill=0)
        layer.paste(Image.new("RGBA", layer.size, (*pill.colour, 255)), (0, 0), half)
        draw = ImageDraw.Draw(layer)
    else:
        draw.ellipse(box, fill=(*pill.colour, 255))
    font = ImageFont.load_default(size=max(10, int(h * 0.32)))
    text = pill.product.imprint or ""
    ink = tuple(max(0, c - 90) for c in pill.colour)
    tb = draw.textbbox((0, 0), text, font=font)
    draw.text(((w + 8 - (tb[2] - tb[0])) / 2 - tb[0], (h + 8 - (tb[3] - tb[1])) / 2 - tb[1]),
              text, font=font, fill=(*ink, 255))  # fmt: skip
    return layer


def render(
    pill: DemoPill,
    *,
    background: tuple[int, int, int] = (40, 40, 44),
    size: tuple[int, int] = (640, 480),
    angle: float = 0.0,
    scale: float = 1.0,
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0),
    seed: int = 0,
    count: int = 1,
) -> bytes:
    """A JPEG photo of `count` copies of the pill: studio by default, a phone photo when given a
    background, colour cast, angle and scale."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", size, background)
    layer = _pill_layer(pill, scale).rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    slots = max(1, count)
    for i in range(slots):
        cx = int(size[0] * (i + 0.5) / slots - layer.width / 2)
        cy = int(size[1] / 2 - layer.height / 2 + rng.integers(-10, 11))
        canvas.paste(layer, (cx, cy), layer)
    arr = np.asarray(canvas, dtype=np.float32) * np.asarray(cast, dtype=np.float32)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    vignette = 1.0 - 0.18 * (
        ((xx - size[0] / 2) ** 2 + (yy - size[1] / 2) ** 2) / (size[0] ** 2 / 4)
    )
    arr = arr * vignette[..., None] + rng.normal(0, 3.0, arr.shape)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def reference_images(pill: DemoPill) -> list[bytes]:
    """Studio references: dark background, even light, two angles."""
    return [render(pill, angle=0.0, seed=1), render(pill, angle=math.degrees(0.5), seed=2)]


def phone_photo(pill: DemoPill, *, seed: int = 7, count: int = 1) -> bytes:
    """A dispensing photo: counter-top background, warm cast, rotated, smaller in the frame."""
    return render(
        pill, background=(150, 120, 90), size=(800, 600), angle=35.0 + seed, scale=0.8,
        cast=(1.08, 1.0, 0.88), seed=seed, count=count,
    )  # fmt: skip


def demo_order(
    pill: DemoPill, order_id: str, patient: str, status: str = "active"
) -> dict[str, Any]:
    """A MedicationRequest as an EHR would send it: NDC coded, one tablet per dose."""
    return {
        "resourceType": "MedicationRequest", "id": order_id, "status": status, "intent": "order",
        "subject": {"reference": patient},
        "medicationCodeableConcept": {
            "coding": [{"system": NDC, "code": pill.product.ndcs[0]}],
            "text": pill.product.name,
        },
        "dosageInstruction": [{"text": "1 tablet by mouth",
                               "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}],
    }  # fmt: skip
