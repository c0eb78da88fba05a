"""Hand gestures from MediaPipe's 21 hand landmarks, and their temporal debouncing.

``classify`` is a pure function of one hand's landmarks:

    >>> from vision.gestures import classify, GestureDebouncer
    >>> classify(landmarks)                     # doctest: +SKIP
    'victory'
    >>> deb = GestureDebouncer(hold_ms=300)
    >>> [deb.update('fist', t) for t in (0.0, 0.1, 0.2, 0.3, 0.4)]
    [None, None, None, 'fist', None]

How ``classify`` decides (see docs/vision.md for the full contract):

* Landmarks are MediaPipe's order: 0 wrist; thumb 1-4 (CMC, MCP, IP, tip);
  index 5-8, middle 9-12, ring 13-16, pinky 17-20 (MCP, PIP, DIP, tip).
* Everything is measured relative to the hand itself: distances are divided
  by a palm size taken from the rigid palm points (wrist and the four MCPs),
  and only distances and their differences are used. That makes the result
  independent of position, scale, in-plane rotation and mirroring (left and
  right hands are mirror images), whatever the units.
* A finger (index to pinky) is extended when its tip is well beyond its
  knuckle as seen from the wrist, and its PIP joint is not sharply bent.
  The thumb is extended when it is roughly straight and its tip stands
  clear of every bone of the other fingers (a resting thumb touches one).
* Each finger gets a soft extension score; each gesture is a pattern of
  required finger states, and the best pattern wins only if every required
  finger agrees with margin. Otherwise the answer is ``"unknown"``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Deque, Dict, Optional, Tuple

import numpy as np

GESTURES = ("open_palm", "fist", "pointing", "victory", "thumbs_up", "unknown")

WRIST = 0
THUMB = (1, 2, 3, 4)
FINGERS = {  # MCP, PIP, DIP, TIP
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "pinky": (17, 18, 19, 20),
}

# Gesture patterns over (thumb, index, middle, ring, pinky): True = extended,
# False = curled, None = either. The thumb is free for an open palm, pointing
# and victory because people hold it either way; it decides fist vs thumbs-up.
_PATTERNS: Dict[str, Tuple[Optional[bool], ...]] = {
    "open_palm": (None, True, True, True, True),
    "fist": (False, False, False, False, False),
    "pointing": (None, True, False, False, False),
    "victory": (None, True, True, False, False),
    "thumbs_up": (True, False, False, False, False),
}

# Score a finger state must reach, for every required finger, to accept a
# pattern. 0.5 is the decision boundary; the margin absorbs landmark noise.
_MIN_AGREEMENT = 0.6


def _as_points(landmarks: object) -> np.ndarray:
    """Validate and convert to a float (21, 2|3) array; raise ValueError naming the problem."""
    try:
        pts = np.asarray(landmarks, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"landmarks must be 21 numeric (x, y) or (x, y, z) points: {exc}") from None
    if pts.ndim == 1 and pts.size in (42, 63):
        pts = pts.reshape(21, -1)
    if pts.ndim != 2 or pts.shape[0] != 21 or pts.shape[1] not in (2, 3):
        raise ValueError(f"landmarks must have shape (21, 2) or (21, 3), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks contain NaN or infinite values")
    return pts


def _depth_usable(pts: np.ndarray) -> bool:
    """Use z only when it is on the same scale as x and y (not absent, not in other units)."""
    if pts.shape[1] < 3:
        return False
    xy_span = float(np.ptp(pts[:, :2], axis=0).max())
    z_span = float(np.ptp(pts[:, 2]))
    # A hand is at most about 3.5 times deeper than it is wide in the image.
    return xy_span > 0.0 and z_span <= 4.0 * xy_span


def _sigmoid(value: float, threshold: float, softness: float) -> float:
    z = (value - threshold) / softness
    z = max(-30.0, min(30.0, z))
    return 1.0 / (1.0 + math.exp(-z))


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise angle between vectors in degrees (0 = same direction); 0 for degenerate rows."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    denom = na * nb
    cos = np.divide(np.sum(a * b, axis=-1), denom, out=np.ones_like(denom), where=denom > 0.0)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def palm_size(pts: np.ndarray) -> float:
    """Size of the palm from its rigid points, robust to the palm tilting away.

    Each rigid distance is divided by its typical ratio to the wrist-to-middle
    -knuckle length; the largest is the one least shortened by perspective.
    """
    d = np.linalg.norm(pts[[0, 0, 0, 5]] - pts[[9, 5, 17, 17]], axis=1)
    return float(np.max(d / _PALM_RATIOS))


_PALM_RATIOS = np.array([1.0, 0.98, 0.88, 0.62])
_FINGER_IDX = np.array(list(FINGERS.values()))  # (4 fingers, MCP PIP DIP TIP)
_SEG_START = _FINGER_IDX[:, :3].ravel()  # the 12 finger bones, start and end joints
_SEG_END = _FINGER_IDX[:, 1:].ravel()


def finger_extension(landmarks: object) -> Dict[str, float]:
    """Soft extension score in [0, 1] for each finger (1 = straight out, 0 = curled).

    Same input contract as ``classify``; exposed so callers can build their
    own gestures from the same geometry.
    """
    pts = _as_points(landmarks)
    if not _depth_usable(pts):
        pts = pts[:, :2]
    size = palm_size(pts)
    if size <= 0.0:
        raise ValueError("landmarks are degenerate: the palm has zero size")
    pts = (pts - pts[WRIST]) / size  # wrist at the origin, palm size 1
    f = pts[_FINGER_IDX]  # (4, 4, dims)
    # How far the tip lies beyond the knuckle, seen from the wrist, as a
    # fraction of the finger's own length: near 1 for a straight finger,
    # below 0 for a curled one. Dividing by the finger's own length keeps
    # short fingers (pinky) and squashed views comparable.
    chain = np.linalg.norm(np.diff(f, axis=1), axis=2).sum(axis=1)
    reach = (np.linalg.norm(f[:, 3], axis=1) - np.linalg.norm(f[:, 0], axis=1)) / np.maximum(chain, 0.25)
    # Bend past the PIP joint, from the proximal phalanx to the PIP-to-tip
    # line (long vectors, so landmark noise moves it little): near 0 straight,
    # 150+ curled. Only a veto: a sharply bent finger is not extended however
    # far its tip reaches.
    bend = _angles_deg(f[:, 1] - f[:, 0], f[:, 3] - f[:, 1])
    scores = {
        name: _sigmoid(float(r), 0.4, 0.1) * _sigmoid(-float(b), -120.0, 15.0)
        for name, r, b in zip(FINGERS, reach, bend)
    }
    scores["thumb"] = _thumb_extension(pts)
    return scores


def _thumb_extension(pts: np.ndarray) -> float:
    """Thumb score: the tip stands clear of the fingers and the thumb is roughly straight.

    A thumb wrapped over a fist, or resting along the index finger, touches a
    finger: its tip is within a finger's thickness of some finger bone. An
    extended thumb (open hand, thumbs-up, the "L" of a pointing hand) holds it
    well away from all of them.
    """
    tip = pts[4]
    a, b = pts[_SEG_START], pts[_SEG_END]
    ab = b - a
    length2 = np.sum(ab * ab, axis=1)
    t = np.divide(np.sum((tip - a) * ab, axis=1), length2, out=np.zeros_like(length2), where=length2 > 0.0)
    nearest = a + np.clip(t, 0.0, 1.0)[:, None] * ab
    clearance = float(np.min(np.linalg.norm(nearest - tip, axis=1)))
    chain = float(np.linalg.norm(np.diff(pts[1:5], axis=0), axis=1).sum())
    straightness = float(np.linalg.norm(tip - pts[1])) / chain if chain > 0.0 else 0.0
    return math.sqrt(_sigmoid(clearance, 0.22, 0.04) * _sigmoid(straightness, 0.9, 0.03))


def classify(landmarks: object) -> str:
    """Classify one hand's gesture from its 21 landmarks.

    ``landmarks``: 21 points in MediaPipe's order, each ``(x, y)`` or
    ``(x, y, z)``, in any consistent image coordinates with y pointing down
    (normalised, pixels, or relative to the wrist). A flat sequence of 42 or
    63 numbers is accepted too. Returns one of ``GESTURES``. Raises
    ``ValueError`` for input of the wrong shape, non-finite values or a
    degenerate (zero-size) hand.
    """
    ext = finger_extension(landmarks)
    states = (ext["thumb"], ext["index"], ext["middle"], ext["ring"], ext["pinky"])
    best, best_score = "unknown", _MIN_AGREEMENT
    for name, pattern in _PATTERNS.items():
        agreement = 1.0
        for want, score in zip(pattern, states):
            if want is None:
                continue
            agreement = min(agreement, score if want else 1.0 - score)
        if agreement > best_score:
            best, best_score = name, agreement
    return best


class GestureDebouncer:
    """Report a gesture once, after it has been held continuously for ``hold_ms``.

    Feed it one label per frame with the frame's timestamp. ``"unknown"`` and
    None break a hold. A gap between frames longer than ``max_gap_ms`` also
    breaks it (the hand was not seen). After firing, the same gesture fires
    again only after it has been released and held anew.
    """

    def __init__(self, hold_ms: float = 300.0, max_gap_ms: float = 250.0) -> None:
        if not hold_ms >= 0.0:
            raise ValueError(f"hold_ms must be >= 0, got {hold_ms!r}")
        if not max_gap_ms > 0.0:
            raise ValueError(f"max_gap_ms must be > 0, got {max_gap_ms!r}")
        self.hold_s = hold_ms / 1000.0
        self.max_gap_s = max_gap_ms / 1000.0
        self._current: Optional[str] = None
        self._since_s = 0.0
        self._last_s: Optional[float] = None
        self._fired = False

    def update(self, gesture: Optional[str], t_s: float) -> Optional[str]:
        if gesture is not None and gesture not in GESTURES:
            raise ValueError(f"unknown gesture label {gesture!r}; expected one of {GESTURES}")
        if gesture == "unknown":
            gesture = None
        gap = self._last_s is not None and (t_s - self._last_s) > self.max_gap_s
        self._last_s = t_s
        if gesture != self._current or gap:
            self._current, self._since_s, self._fired = gesture, t_s, False
        if self._current is None or self._fired:
            return None
        if t_s - self._since_s + 1e-9 >= self.hold_s:
            self._fired = True
            return self._current
        return None

    def reset(self) -> None:
        self._current, self._last_s, self._fired = None, None, False


class HandednessSmoother:
    """Majority vote of ``'left'``/``'right'`` over the last ``window`` frames, score weighted."""

    def __init__(self, window: int = 9) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        self._votes: Deque[Tuple[str, float]] = deque(maxlen=window)

    def update(self, handedness: str, score: float = 1.0) -> str:
        if handedness not in ("left", "right"):
            raise ValueError(f"handedness must be 'left' or 'right', got {handedness!r}")
        self._votes.append((handedness, score))
        left = sum(s for h, s in self._votes if h == "left")
        right = sum(s for h, s in self._votes if h == "right")
        if left == right:
            return handedness
        return "left" if left > right else "right"

    def reset(self) -> None:
        self._votes.clear()
