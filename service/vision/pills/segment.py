"""Find every pill in a photo: background model + edges -> convex pill regions (OpenCV).

Works at a fixed working scale so cost does not grow with the photo. Pills are convex, so each
region is replaced by its convex hull (fills debossed imprints, glare and shadow-split halves).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 384  # px, long side of the working image
MIN_AREA_FRAC = 0.0005  # of the frame: a small pill in a full phone frame is ~0.1 %
MIN_SIDE_PX = 6
MAX_BORDER_TOUCH = 0.35  # a region hugging this share of the frame edge is background
MIN_SOLIDITY = 0.6
TIGHT_CROP_SOLIDITY = 0.9  # a frame-hugging region this solid is a tightly cropped pill ...
TIGHT_CROP_MAX_FRAC = 0.85  # ... unless it fills the frame (a flat or noisy image)
MIN_LOCAL_FRAC = 0.002  # local-background regions smaller than this are specks or marks
GOOD_QUALITY = 0.9  # below this solidity the local-background segmentation is tried too
BORDER_PENALTY = 0.6  # a region cut by the frame edge is less likely a whole pill
MIN_REL_AREA = 0.2  # regions smaller than this share of the largest are crumbs, not pills
MARK_REL_AREA = 0.5  # regions covering under this share of an outline around them are marks
OUTLINE_LINK_PX = 10  # edge-group hulls this close belong to one outline (rim arc and body)


@dataclass(frozen=True)
class PillRegion:
    """One pill: convex-hull contour and mask in full-resolution photo coordinates."""

    contour: np.ndarray  # (K, 1, 2) int32, full resolution
    mask: np.ndarray  # uint8 0/255, full resolution, same HxW as the photo
    area_px: float
    touches_border: bool


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Everything not reachable from outside the frame becomes foreground."""
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    flood = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, flood, (0, 0), 255)
    filled: np.ndarray = mask | cv2.bitwise_not(padded)[1:-1, 1:-1]
    return filled


def border_pixels(img: np.ndarray, frac: float = 0.04) -> np.ndarray:
    """The frame's outer band, where background is most likely (N, C)."""
    h, w = img.shape[:2]
    b = max(2, int(frac * min(h, w)))
    c = img.shape[2] if img.ndim == 3 else 1
    parts = [img[:b], img[-b:], img[:, :b], img[:, -b:]]
    out: np.ndarray = np.concatenate([p.reshape(-1, c) for p in parts])
    return out


def foreground_mask(small: np.ndarray, local: bool) -> np.ndarray:
    """Colour distance to the background OR closed edge contours.

    The background is the border's median colour (tight crops, studio shots) or, with `local`,
    a heavily median-filtered copy of the frame (small pills on uneven, shaded backgrounds).
    """
    blur = cv2.GaussianBlur(small, (5, 5), 0)
    lab = cv2.cvtColor(blur, cv2.COLOR_RGB2LAB).astype(np.float32)
    weights = np.array([0.5, 1.0, 1.0], np.float32)  # lightness varies with shading; hue less
    if local:
        k = (max(small.shape[:2]) // 6) | 1
        bg = cv2.cvtColor(cv2.medianBlur(blur, k), cv2.COLOR_RGB2LAB).astype(np.float32)
        bg_border = border_pixels(bg)
    else:
        bg = np.median(border_pixels(lab), axis=0)
        bg_border = bg
    d = np.sqrt((((lab - bg) ** 2) * weights).sum(axis=-1))
    border_d = np.sqrt((((border_pixels(lab) - bg_border) ** 2) * weights).sum(axis=-1))
    noise = float(np.percentile(border_d, 90))
    otsu, _ = cv2.threshold(
        np.clip(d, 0, 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    colour = (d > max(otsu, 1.5 * noise, 10.0)).astype(np.uint8) * 255
    grey = cv2.cvtColor(blur, cv2.COLOR_RGB2GRAY)
    edges = cv2.dilate(cv2.Canny(grey, 20, 50), np.ones((3, 3), np.uint8))
    ellipse7 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    outlined = cv2.morphologyEx(_fill_holes(edges), cv2.MORPH_OPEN, ellipse7)
    mask = colour | outlined
    ellipse5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, ellipse5)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, ellipse5, iterations=2)
    return _fill_holes(mask)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def outline_mask(small: np.ndarray) -> np.ndarray:
    """Filled convex hulls of linked edge groups, hulls that (nearly) touch merged.

    The outline of a pill whose body barely differs from the background (white on off-white,
    grey on grey, a macro shot): its rim, imprint and shadow edges form one group whose hull
    is the pill, where the colour mask only keeps the imprint marks or the shadow band.
    """
    grey = cv2.cvtColor(cv2.GaussianBlur(small, (5, 5), 0), cv2.COLOR_RGB2GRAY)
    mask = cv2.dilate(cv2.Canny(grey, 20, 50), _disc(2))  # links edge fragments 4 px apart
    min_area = MIN_AREA_FRAC * small.shape[0] * small.shape[1]
    for link in (0, OUTLINE_LINK_PX):  # hulls of the edge groups, then of hulls that nearly touch
        if link:
            mask = cv2.dilate(mask, _disc(link // 2))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        hulls = [cv2.convexHull(c) for c in contours]
        mask = np.zeros_like(mask)
        cv2.fillPoly(mask, [h for h in hulls if cv2.contourArea(h) >= min_area], 255)
    shrink = _disc(2 + OUTLINE_LINK_PX // 2)  # undo the dilations
    out: np.ndarray = cv2.erode(mask, shrink, borderType=cv2.BORDER_REPLICATE)
    return out


_Found = tuple[float, np.ndarray, bool, float]  # area, hull, touches border, solidity


def _candidates(mask: np.ndarray) -> list[_Found]:
    """Pill-like connected regions of a foreground mask, largest first, crumbs dropped."""
    sh, sw = mask.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    found: list[_Found] = []
    for i in range(1, n):
        x, y, cw, ch, area = (int(v) for v in stats[i])
        if area < MIN_AREA_FRAC * sh * sw or min(cw, ch) < MIN_SIDE_PX:
            continue
        comp = (labels == i).astype(np.uint8)
        edge = int(comp[0].sum() + comp[-1].sum() + comp[:, 0].sum() + comp[:, -1].sum())
        contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        hull = cv2.convexHull(max(contours, key=cv2.contourArea))
        hull_area = max(cv2.contourArea(hull), 1.0)
        solidity = area / hull_area
        if solidity < MIN_SOLIDITY:
            continue
        if edge / (2 * (sh + sw)) > MAX_BORDER_TOUCH and not (
            solidity > TIGHT_CROP_SOLIDITY and hull_area < TIGHT_CROP_MAX_FRAC * sh * sw
        ):
            continue  # hugging the frame: background, unless a solid pill in a tight crop
        found.append((float(area), hull, edge > 0, solidity))
    if not found:
        return []
    largest = max(f[0] for f in found)
    return sorted((f for f in found if f[0] >= MIN_REL_AREA * largest), key=lambda f: -f[0])


def _quality(found: list[_Found]) -> float:
    """How pill-like the main region is: solid, and not cut by the frame edge."""
    if not found:
        return 0.0
    _, _, touches, solidity = found[0]
    return solidity * (BORDER_PENALTY if touches else 1.0)


def _inside(inner: _Found, outer: _Found) -> bool:
    """True when the inner region's centre lies within the outer region's hull."""
    m = cv2.moments(inner[1])
    if m["m00"] == 0:
        return False
    centre = (m["m10"] / m["m00"], m["m01"] / m["m00"])
    return cv2.pointPolygonTest(outer[1], centre, False) >= 0


def _prefer_outlines(found: list[_Found], outlines: list[_Found]) -> list[_Found]:
    """Marks or a shadow band on a pill give way to the much larger outline around them."""
    if not found:
        return found
    for outline in outlines:
        if found[0][0] >= MARK_REL_AREA * outline[0]:
            break  # outlines are largest first: the rest are no larger than the main region
        inner = [f for f in found if _inside(f, outline)]
        if inner and sum(f[0] for f in inner) < MARK_REL_AREA * outline[0]:
            kept = [outline] + [f for f in found if not any(f is g for g in inner)]
            largest = max(f[0] for f in kept)
            return sorted((f for f in kept if f[0] >= MIN_REL_AREA * largest), key=lambda f: -f[0])
    return found


def find_pills(rgb: np.ndarray) -> list[PillRegion]:
    """Every pill-like region, largest first; empty when nothing pill-like is in the frame."""
    h, w = rgb.shape[:2]
    scale = WORK_SIDE / max(h, w)
    small = cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    found = _candidates(foreground_mask(small, local=False))
    if _quality(found) < GOOD_QUALITY:
        local = [
            f
            for f in _candidates(foreground_mask(small, local=True))
            if f[0] >= MIN_LOCAL_FRAC * small.shape[0] * small.shape[1]
        ]
        if _quality(local) > _quality(found) and not (found and _inside(local[0], found[0])):
            found = local  # unless the "better" region is a marking on the weak one
    found = _prefer_outlines(found, _candidates(outline_mask(small)))
    regions = []
    for _, hull, touches, _ in found:
        full = np.round(hull.astype(np.float64) / scale).astype(np.int32)
        full_mask = np.zeros((h, w), np.uint8)
        cv2.drawContours(full_mask, [full], -1, 255, thickness=-1)
        regions.append(PillRegion(full, full_mask, float(cv2.contourArea(full)), touches))
    return regions


def whole_frame_region(rgb: np.ndarray) -> PillRegion:
    """The inscribed ellipse, for a reference image known to be a tight crop of one pill."""
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.46), int(h * 0.46)), 0, 0, 360, 255, -1)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return PillRegion(contours[0], mask, float(cv2.contourArea(contours[0])), False)
