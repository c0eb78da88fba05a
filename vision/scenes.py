"""Test scenes made from real photos that ship with scikit-image (no downloads).

Three real people are available offline: the astronaut (Eileen Collins,
scikit-image's ``astronaut.png``), the cameraman (scikit-image's
``camera.png``) and Grace Hopper (matplotlib's sample ``grace_hopper.jpg``).
This module pastes head crops of them onto a real, face-free photo
(``coffee.png``) at a chosen position, face size, rotation and exposure, and
adds sensor noise, so tests and benchmarks get frames whose true face boxes
are known.

    from opensteady.vision.scenes import Placement, compose, astronaut_variants

    frame, boxes = compose([Placement("astronaut", cx=0.3, cy=0.4, face_w=0.15),
                            Placement("cameraman", cx=0.7, cy=0.4, face_w=0.12)])
    for variant in astronaut_variants():
        print(variant.name, variant.face)

Needs scikit-image (``pip install opensteady[sim]``); imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, List, Optional, Tuple

import numpy as np

from opensteady.vision.types import Box

# Hand-annotated face boxes (x, y, w, h in source pixels: brow to chin, ear to
# ear) and the head-and-shoulders crop taken around each.
Rect = Tuple[int, int, int, int]


@dataclass(frozen=True)
class _Source:
    loader: str  # function name in skimage.data
    face: Rect
    crop: Rect
    hair: Rect  # a patch of the person's hair, for the back of the head


_SOURCES = {
    "astronaut": _Source("astronaut", face=(178, 84, 96, 100), crop=(110, 10, 240, 300), hair=(178, 30, 90, 48)),
    "cameraman": _Source("camera", face=(186, 118, 76, 84), crop=(120, 50, 210, 230), hair=(175, 70, 80, 40)),
    "hopper": _Source("mpl:grace_hopper.jpg", face=(165, 150, 205, 190), crop=(40, 20, 450, 480),
                      hair=(200, 95, 130, 40)),
}
PEOPLE = tuple(_SOURCES)
FRAME_SIZE = (640, 480)


@dataclass(frozen=True)
class Placement:
    """Where to paste a head: face centre and face width normalised to the frame."""

    who: str
    cx: float
    cy: float
    face_w: float
    angle_deg: float = 0.0  # in-plane rotation, counter-clockwise
    turned_away: bool = False  # cover the face with the person's own hair: the back of the head


@dataclass(frozen=True)
class Variant:
    name: str
    frame: np.ndarray
    face: Box  # true face box, normalised


@lru_cache(maxsize=None)
def _photo(loader: str) -> np.ndarray:
    if loader.startswith("mpl:"):  # a sample photo that ships with matplotlib
        import matplotlib
        import matplotlib.image

        image = matplotlib.image.imread(f"{matplotlib.get_data_path()}/sample_data/{loader[4:]}")
    else:
        import skimage.data

        image = getattr(skimage.data, loader)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


@lru_cache(maxsize=None)
def background(size: Tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A real photo without faces (scikit-image's coffee cup) at ``size`` (width, height)."""
    import cv2

    return cv2.resize(_photo("coffee"), size, interpolation=cv2.INTER_AREA)


def compose(
    placements: Iterable[Placement], size: Tuple[int, int] = FRAME_SIZE, base: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, List[Box]]:
    """Paste heads onto the background; return the frame and each face's true box (normalised)."""
    import cv2

    w, h = size
    frame = (background(size) if base is None else base).copy()
    boxes = []
    for p in placements:
        if p.who not in _SOURCES:
            raise ValueError(f"unknown face source {p.who!r}; choose from {sorted(_SOURCES)}")
        src = _SOURCES[p.who]
        fx, fy, fw, fh = src.face
        cx0, cy0, cw, ch = src.crop
        crop = _photo(src.loader)[cy0 : cy0 + ch, cx0 : cx0 + cw].copy()
        if p.turned_away:
            hx, hy, hw, hh = src.hair
            # The hair's own colour, smoothed flat: texture from the same photo
            # still looks like a face to detectors, a plain head does not.
            patch = _photo(src.loader)[hy : hy + hh, hx : hx + hw]
            hair = cv2.resize(cv2.blur(patch, (31, 31)), (fw + 16, fh + 16))
            oval = np.zeros(hair.shape[:2], np.uint8)
            cv2.ellipse(oval, ((fw + 16) // 2, (fh + 16) // 2), ((fw + 16) // 2, (fh + 16) // 2), 0, 0, 360, (1,), -1)
            region = crop[fy - cy0 - 8 : fy - cy0 + fh + 8, fx - cx0 - 8 : fx - cx0 + fw + 8]
            region[oval > 0] = hair[oval > 0]
        scale = p.face_w * w / fw
        # Affine map from crop pixels to frame pixels: rotate and scale about the face centre.
        fcx, fcy = fx - cx0 + fw / 2, fy - cy0 + fh / 2
        m = np.array(cv2.getRotationMatrix2D((fcx, fcy), p.angle_deg, scale), dtype=float)
        m[:, 2] += (p.cx * w - fcx, p.cy * h - fcy)
        warped = cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(np.full(crop.shape[:2], 255, np.uint8), m, (w, h)) > 127
        frame[mask] = warped[mask]
        # The face box of the rotated face: the bounding box of its rotated corners.
        corners = np.array([[fx - cx0, fy - cy0], [fx - cx0 + fw, fy - cy0], [fx - cx0, fy - cy0 + fh],
                            [fx - cx0 + fw, fy - cy0 + fh]], float)
        pts = corners @ m[:, :2].T + m[:, 2]
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        boxes.append(Box(x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h))
    return frame, boxes


def degrade(frame: np.ndarray, gain: float = 1.0, noise_sigma: float = 0.0, seed: int = 0) -> np.ndarray:
    """Darken (multiply by ``gain``) and add Gaussian sensor noise (sigma in 8-bit levels)."""
    out = frame.astype(np.float32) * gain
    if noise_sigma > 0.0:
        out += np.random.default_rng(seed).normal(0.0, noise_sigma, out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def astronaut_variants(size: Tuple[int, int] = FRAME_SIZE) -> List[Variant]:
    """A fixed grid of astronaut frames: scaled, shifted, rotated, darkened and noised.

    The grid is the same every call (seeded noise); it is the detection-rate
    benchmark set and the face-detection test set.
    """
    variants = []
    positions = [(0.5, 0.45), (0.25, 0.35), (0.75, 0.6), (0.3, 0.7), (0.7, 0.3)]
    for i, face_w in enumerate((0.06, 0.09, 0.13, 0.2, 0.3, 0.4)):
        cx, cy = positions[i % len(positions)]
        frame, (box,) = compose([Placement("astronaut", cx, cy, face_w)], size)
        variants.append(Variant(f"scale w={face_w:.2f}", frame, box))
    for cx, cy in positions:
        frame, (box,) = compose([Placement("astronaut", cx, cy, 0.16)], size)
        variants.append(Variant(f"shift ({cx:.2f},{cy:.2f})", frame, box))
    for angle in (-30, -15, 15, 30):
        frame, (box,) = compose([Placement("astronaut", 0.5, 0.45, 0.16, angle)], size)
        variants.append(Variant(f"rotate {angle:+d} deg", frame, box))
    for gain in (0.5, 0.3, 0.15):
        frame, (box,) = compose([Placement("astronaut", 0.45, 0.45, 0.16)], size)
        variants.append(Variant(f"dark gain={gain}", degrade(frame, gain=gain), box))
    for k, sigma in enumerate((8.0, 16.0, 25.0)):
        frame, (box,) = compose([Placement("astronaut", 0.55, 0.45, 0.16)], size)
        variants.append(Variant(f"noise sigma={sigma:g}", degrade(frame, noise_sigma=sigma, seed=k), box))
    frame, (box,) = compose([Placement("astronaut", 0.6, 0.5, 0.11, 10)], size)
    variants.append(Variant("small+rotated+dark+noisy", degrade(frame, 0.4, 10.0, seed=9), box))
    return variants


def matches(found: Box, truth: Box, min_iou: float = 0.3) -> bool:
    """A detection matches a true face when it overlaps it and its centre lies inside it."""
    return found.iou(truth) >= min_iou and truth.contains(found.cx, found.cy)


def reid_sequences(fps: float = 30.0) -> dict:
    """Scripted shots of the three people for re-identification: name -> one list of placements per frame.

    The first person listed in frame 0 is the one to lock on. Each sequence
    takes that person away for longer than a tracker coasts and brings them
    back elsewhere, while someone else is in view:

    - ``cut``: the astronaut, a cut to the cameraman alone, a cut back to the
      astronaut at another place and size.
    - ``occlusion``: the astronaut and Grace Hopper; the astronaut is hidden
      for a second while Hopper walks through where she was, then reappears
      on the other side, where Hopper came from.
    - ``leave_and_return``: Hopper walks out of the right edge, the cameraman
      walks in from the left and stays, Hopper comes back from the right.
    """
    n = int(round(fps))  # one second of frames

    def walk(who: str, x0: float, x1: float, y: float, w: float, frames: int) -> List[Placement]:
        return [Placement(who, x0 + (x1 - x0) * i / max(frames - 1, 1), y, w) for i in range(frames)]

    cut = ([[p] for p in walk("astronaut", 0.3, 0.35, 0.45, 0.15, n)]
           + [[p] for p in walk("cameraman", 0.6, 0.55, 0.4, 0.14, n)]
           + [[p] for p in walk("astronaut", 0.82, 0.78, 0.55, 0.12, n)])
    hopper = walk("hopper", 0.8, 0.2, 0.42, 0.13, 3 * n)
    astro = walk("astronaut", 0.45, 0.5, 0.48, 0.14, n) + walk("astronaut", 0.75, 0.7, 0.5, 0.14, 2 * n)
    occlusion = [[a, h] if not n <= i < 2 * n else [h] for i, (a, h) in enumerate(zip(astro, hopper))]
    out = walk("hopper", 0.5, 1.2, 0.45, 0.14, n)
    cam = walk("cameraman", -0.2, 0.3, 0.42, 0.13, n)
    back = walk("hopper", 1.15, 0.7, 0.45, 0.14, n)
    leave = ([[p] for p in out[: n // 2]]
             + [[p, c] for p, c in zip(out[n // 2:], cam[: n - n // 2])]
             + [[c] for c in cam[n - n // 2:]] + [[cam[-1]]] * (n // 2)
             + [[cam[-1], b] for b in back])
    return {"cut": cut, "occlusion": occlusion, "leave_and_return": leave}
