"""Appearance signatures of faces, to tell people apart when position cannot.

A signature is a normalised hue-saturation histogram (12 hues x 4
saturations) of the central part of a face box, taken from a 32x32 thumbnail.
Hue and saturation barely change with exposure, so the same face under other
lighting keeps a similar signature, while another person (other skin tone,
hair, glasses, a grey-scale camera) usually differs.

    sig = face_signature(frame_rgb, face.box)
    similarity(sig, other_sig)   # Bhattacharyya coefficient: 1.0 same, ~0.5 different people

Measured on scikit-image photos: the astronaut against herself scaled,
rotated 30 degrees or darkened to 15 %: 0.95-1.0, with noise sigma 25:
0.86; against the cameraman: 0.49, against the back of her head: 0.46. Cost: about 0.03 ms per face.

A body signature is the same histogram taken twice, over the torso and over
the legs of a person detector's box (its central half in width, where the
figure is), each half weighted 0.5: clothing seen from any side. It is a weak
cue (two people in dark coats look alike), so the tracker uses it only to
keep or re-take a body near where it was, never alone to re-identify.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

from opensteady.vision.types import Box

_THUMB = 32
_BINS = (12, 4)  # hue, saturation


def _histogram(frame_rgb: np.ndarray, box: Box, left: float, right: float, top: float, bottom: float) -> np.ndarray:
    """Normalised HS histogram of the part of ``box`` between the given fractions; empty outside the frame."""
    import cv2

    h, w = frame_rgb.shape[:2]
    x0, x1 = int(max(0.0, box.x + left * box.w) * w), int(min(1.0, box.x + right * box.w) * w)
    y0, y1 = int(max(0.0, box.y + top * box.h) * h), int(min(1.0, box.y + bottom * box.h) * h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros(0)
    # Linear sampling, not area averaging: six times cheaper, and a histogram
    # of 1024 samples does not need the smoothing.
    thumb = cv2.resize(frame_rgb[y0:y1, x0:x1], (_THUMB, _THUMB), interpolation=cv2.INTER_LINEAR)
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, list(_BINS), [0, 180, 0, 256]).ravel()
    total = float(hist.sum())
    return hist / total if total > 0.0 else np.zeros(0)


def face_signature(frame_rgb: np.ndarray, box: Box) -> Tuple[float, ...]:
    """Signature of the face in ``box`` (normalised); empty when the box is outside the frame."""
    # The central 80 % of the box: less background and hair at the edges.
    return tuple(_histogram(frame_rgb, box, 0.1, 0.9, 0.1, 0.9).tolist())


def body_signature(frame_rgb: np.ndarray, box: Box) -> Tuple[float, ...]:
    """Clothing signature of a person detector's ``box``: torso and legs; empty when either is outside the frame."""
    # A pedestrian detector's window has a margin of about 1/8 around the
    # figure; the head takes the next 1/8.
    torso = _histogram(frame_rgb, box, 0.3, 0.7, 0.25, 0.55)
    legs = _histogram(frame_rgb, box, 0.3, 0.7, 0.55, 0.85)
    if not torso.size or not legs.size:
        return ()
    return tuple((0.5 * np.concatenate([torso, legs])).tolist())


def similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Bhattacharyya coefficient of two signatures in [0, 1]; 1.0 when either is empty (no evidence)."""
    if not a or not b:
        return 1.0
    if len(a) != len(b):
        raise ValueError(f"signatures differ in length: {len(a)} and {len(b)}")
    return min(1.0, sum(math.sqrt(max(0.0, x) * max(0.0, y)) for x, y in zip(a, b)))
