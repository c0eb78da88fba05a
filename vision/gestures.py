"""Hand gestures from MediaPipe's 21 hand landmarks, and their temporal debouncing.

``classify`` is a pure function of one hand's landmarks:

    >>> from opensteady.vision.gestures import classify, GestureDebouncer
    >>> classify(landmarks)                     # doctest: +SKIP
    'victory'
    >>> deb = GestureDebouncer(hold_ms=300)
    >>> [deb.update('fist', t) for t in (0.0, 0.1, 0.2, 0.3, 0.4)]
    [None, None, None, 'fist', None]

How ``classify`` decides (docs/vision.md has the design and the figures):

* Landmarks are MediaPipe's order: 0 wrist; thumb 1-4 (CMC, MCP, IP, tip);
  index 5-8, middle 9-12, ring 13-16, pinky 17-20 (MCP, PIP, DIP, tip).
* ``hand_features`` measures the hand relative to itself: distances divided
  by a palm size from the rigid palm points, cosines between bones, and soft
  finger-extension scores. Only distances and unsigned angles are used, so
  the features do not change with position, scale, in-plane rotation or
  mirroring (left and right hands).
* A small neural network (one tanh layer, weights in ``gesture_model.npz``,
  trained by ``vision/gesture_training.py`` on real hands from 27 people, see
  NOTICE) turns the features into probabilities for the finger pattern:
  open palm, fist, pointing, victory, "thumb out of a fist", other.
* Three checks stand between a pattern and an action, because a false action
  costs more than a missed one: the winning probability must reach
  ``MIN_CONFIDENCE``; the hand must not plainly contradict the pattern (for
  example a pinky clearly out is never a thumbs-up: that is the "call me"
  sign); and a thumb out of a fist is ``thumbs_up`` only when it points up in
  the image (within ``THUMB_UP_CONE_DEG`` of straight up, y pointing down).
  A thumbs-down, or a thumb held out sideways, is ``unknown``.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
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
FINGER_NAMES = ("thumb", "index", "middle", "ring", "pinky")

# The network's classes: finger patterns, blind to direction. "thumb" is a fist
# with the thumb out (thumbs-up and thumbs-down alike); its direction decides.
MODEL_CLASSES = ("open_palm", "fist", "pointing", "victory", "thumb", "other")

# Finger patterns over (thumb, index, middle, ring, pinky): True = extended,
# False = curled, None = either. The thumb is free for an open palm, a fist,
# pointing and victory, because people hold it in many ways.
PATTERNS: Dict[str, Tuple[Optional[bool], ...]] = {
    "open_palm": (None, True, True, True, True),
    "fist": (None, False, False, False, False),
    "pointing": (None, True, False, False, False),
    "victory": (None, True, True, False, False),
    "thumb": (True, False, False, False, False),
}

# Below this share of the combined evidence (network x pattern) nothing is acted on.
MIN_CONFIDENCE = 0.5
# A finger the pattern wants extended must score at least this; a curled one at
# most 1 - this. Loose on purpose: it only vetoes plain contradictions.
PATTERN_VETO = 0.2
# Thumbs-up: the thumb (MCP to tip) within this angle of the image's up. Real
# thumbs-ups lie within 67 degrees (99th percentile), thumbs-downs beyond 126.
THUMB_UP_CONE_DEG = 70.0

MODEL_PATH = Path(__file__).with_name("gesture_model.npz")

_PALM_RATIOS = np.array([1.0, 0.98, 0.88, 0.62])
_FINGER_IDX = np.array(list(FINGERS.values()))  # (4 fingers, MCP PIP DIP TIP)
_SEG_START = _FINGER_IDX[:, :3].ravel()  # the 12 finger bones, start and end joints
_SEG_END = _FINGER_IDX[:, 1:].ravel()
# Thumb tip to wrist, index/middle/pinky knuckles and the four fingertips; then
# fingertip to fingertip.
_PAIRS_A = np.array([4, 4, 4, 4, 4, 4, 4, 4, 8, 12, 16, 8, 8])
_PAIRS_B = np.array([0, 5, 9, 17, 8, 12, 16, 20, 12, 16, 20, 20, 16])


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
    if not _depth_usable(pts):
        pts = pts[:, :2]
    return pts


def _depth_usable(pts: np.ndarray) -> bool:
    """Use z only when it is on the same scale as x and y (not absent, not in other units)."""
    if pts.shape[1] < 3:
        return False
    xy_span = float(np.ptp(pts[:, :2], axis=0).max())
    z_span = float(np.ptp(pts[:, 2]))
    # A hand is at most about 3.5 times deeper than it is wide in the image.
    return xy_span > 0.0 and z_span <= 4.0 * xy_span


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("...d,...d->...", v, v))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of the angle between vectors along the last axis; 1 where one is zero."""
    d = _norm(a) * _norm(b)
    return np.divide(np.einsum("...d,...d->...", a, b), d, out=np.ones_like(d), where=d > 0.0)


def _sigmoid(x: np.ndarray, threshold: float, softness: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip((x - threshold) / softness, -30.0, 30.0)))


def _normalised(pts: np.ndarray) -> np.ndarray:
    """(N, 21, D) hands with the wrist at the origin and palm size 1.

    Palm size: each rigid palm distance divided by its typical ratio to the
    wrist-to-middle-knuckle length; the largest is the one least shortened by
    perspective, so a palm tilted away from the camera does not shrink it.
    """
    pts = pts - pts[:, :1]
    d = _norm(pts[:, [0, 0, 0, 5]] - pts[:, [9, 5, 17, 17]])
    size = np.max(d / _PALM_RATIOS, axis=1)
    if np.any(size <= 0.0):
        raise ValueError("landmarks are degenerate: the palm has zero size")
    return pts / size[:, None, None]


def _thumb_clearance(pts: np.ndarray) -> np.ndarray:
    """Distance from the thumb tip to the nearest of the 12 finger bones (palm sizes)."""
    tip = pts[:, 4][:, None]
    a, b = pts[:, _SEG_START], pts[:, _SEG_END]
    ab = b - a
    length2 = np.einsum("...d,...d->...", ab, ab)
    t = np.divide(np.einsum("...d,...d->...", tip - a, ab), length2, out=np.zeros_like(length2), where=length2 > 0.0)
    nearest = a + np.clip(t, 0.0, 1.0)[..., None] * ab
    return np.min(_norm(nearest - tip), axis=1)


def _vectors():
    """The bone and landmark-to-landmark vectors the features use, as (head, tail) landmark indices."""
    named = {}
    for f, (m, p, d, t) in FINGERS.items():
        named.update({(f, "axis"): (m, 0), (f, 0): (p, m), (f, 1): (d, p), (f, 2): (t, d),
                      (f, "pip_tip"): (t, p), (f, "mcp_tip"): (t, m), (f, "tip"): (t, 0)})
    named.update({("thumb", 0): (2, 1), ("thumb", 1): (3, 2), ("thumb", 2): (4, 3), ("thumb", "dir"): (4, 2),
                  ("thumb", "span"): (4, 1), "palm": (9, 0), "index_dir": (8, 5)})
    for k, (a, b) in enumerate(zip(_PAIRS_A, _PAIRS_B)):
        named[("pair", k)] = (int(a), int(b))
    keys = list(named)
    return {k: i for i, k in enumerate(keys)}, np.array([named[k][0] for k in keys]), np.array([named[k][1] for k in keys])


_VEC, _VEC_HEAD, _VEC_TAIL = _vectors()
_F = tuple(FINGERS)


def _v(*keys) -> np.ndarray:
    return np.array([_VEC[k] for k in keys])


# Vector pairs whose cosines are features, in feature order (see hand_features).
_COS_A = _v(*[(f, "axis") for f in _F], *[(f, 0) for f in _F], *[(f, 1) for f in _F], *[(f, 0) for f in _F],
            ("thumb", "dir"), ("thumb", "dir"), ("thumb", 0), ("thumb", 1), *[(f, "mcp_tip") for f in _F[:3]])
_COS_B = _v(*[(f, 0) for f in _F], *[(f, 1) for f in _F], *[(f, 2) for f in _F], *[(f, "pip_tip") for f in _F],
            "palm", "index_dir", ("thumb", 1), ("thumb", 2), *[(f, "mcp_tip") for f in _F[1:]])
_BONES = _v(*[(f, j) for f in _F for j in range(3)])  # finger by finger
_TIP, _AXIS, _MCP_TIP = _v(*[(f, "tip") for f in _F]), _v(*[(f, "axis") for f in _F]), _v(*[(f, "mcp_tip") for f in _F])
_THUMB_BONES, _THUMB_SPAN = _v(*[("thumb", j) for j in range(3)]), _VEC[("thumb", "span")]
_PAIRS = _v(*[("pair", k) for k in range(len(_PAIRS_A))])


def hand_features(points: np.ndarray) -> np.ndarray:
    """Features of (N, 21, D) hands, (N, 71), invariant to position, scale, rotation and mirroring.

    Per finger: reach, the cosines at the MCP, PIP and DIP joints and of the
    PIP-to-tip line, straightness, tip distance from the wrist. Thumb:
    clearance from the fingers, straightness, its angle to the palm axis and
    to the index, its joint cosines and the distal bone's share. Thumb tip to
    wrist, knuckles and fingertips; fingertip spreads and the angles between
    neighbouring fingers; last, the five soft extension scores (``FINGER_NAMES``).
    All vectors go through one norm and one cosine call: per hand, numpy's
    per-call overhead is most of the cost.
    """
    pts = _normalised(np.asarray(points, dtype=float))
    vec = pts[:, _VEC_HEAD] - pts[:, _VEC_TAIL]
    length = _norm(vec)
    na, nb = length[:, _COS_A], length[:, _COS_B]
    d = na * nb
    cos = np.divide(np.einsum("nkd,nkd->nk", vec[:, _COS_A], vec[:, _COS_B]), d, out=np.ones_like(d), where=d > 0.0)
    chain = length[:, _BONES].reshape(-1, 4, 3).sum(axis=-1)
    tip_dist = length[:, _TIP]
    reach = (tip_dist - length[:, _AXIS]) / np.maximum(chain, 0.25)
    thumb_bones = length[:, _THUMB_BONES]
    tchain = np.maximum(thumb_bones.sum(axis=-1), 1e-9)
    thumb_straight = length[:, _THUMB_SPAN] / tchain
    clearance = _thumb_clearance(pts)
    # Soft extension scores. A finger is extended when its tip lies beyond its
    # knuckle, seen from the wrist, by a good fraction of its own length, and
    # it is not sharply bent past the PIP joint. The thumb is extended when it
    # is roughly straight and its tip stands clear of every finger bone (a
    # resting thumb touches one).
    bend_deg = np.degrees(np.arccos(np.clip(cos[:, 12:16], -1.0, 1.0)))
    fingers = _sigmoid(reach, 0.4, 0.1) * _sigmoid(-bend_deg, -120.0, 15.0)
    thumb = np.sqrt(_sigmoid(clearance, 0.22, 0.04) * _sigmoid(thumb_straight, 0.9, 0.03))
    return np.column_stack(
        [
            reach,
            cos[:, :16],
            length[:, _MCP_TIP] / np.maximum(chain, 1e-9),
            tip_dist,
            clearance,
            thumb_straight,
            cos[:, 16:20],
            length[:, _PAIRS],
            cos[:, 20:],
            thumb_bones[:, 2] / tchain,
            thumb,
            fingers,
        ]
    )


def extension_scores(points: np.ndarray) -> np.ndarray:
    """Soft extension scores in [0, 1] (1 = straight out) of (N, 21, D) hands, (N, 5) in ``FINGER_NAMES`` order."""
    return hand_features(points)[:, -5:]


def finger_extension(landmarks: object) -> Dict[str, float]:
    """Soft extension score in [0, 1] for each finger (1 = straight out, 0 = curled).

    Same input contract as ``classify``; exposed so callers can build their
    own gestures from the same geometry.
    """
    scores = extension_scores(_as_points(landmarks)[None])[0]
    return dict(zip(FINGER_NAMES, (float(s) for s in scores)))


def thumb_up_angle_deg(landmarks: object) -> float:
    """Angle of the thumb (MCP to tip) from the image's up, 0-180 degrees (y points down)."""
    pts = _as_points(landmarks)
    dx, dy = pts[4, 0] - pts[2, 0], pts[4, 1] - pts[2, 1]
    return math.degrees(math.atan2(abs(dx), -dy))


class GestureModel:
    """The shipped network: standardise, one tanh layer, softmax over ``MODEL_CLASSES``."""

    def __init__(self, weights: Dict[str, np.ndarray]) -> None:
        classes = tuple(str(c) for c in weights["classes"])
        if classes != MODEL_CLASSES:
            raise ValueError(f"gesture model classes {classes} differ from {MODEL_CLASSES}: retrain it")
        self.mean, self.std = weights["mean"], weights["std"]
        self.w1, self.b1, self.w2, self.b2 = weights["w1"], weights["b1"], weights["w2"], weights["b2"]

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "GestureModel":
        with np.load(path, allow_pickle=False) as data:
            return cls({k: data[k] for k in data.files})

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        hidden = np.tanh(((features - self.mean) / self.std) @ self.w1 + self.b1)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=-1, keepdims=True)


_model: Optional[GestureModel] = None


def _default_model() -> GestureModel:
    global _model
    if _model is None:
        _model = GestureModel.load()
    return _model


# PATTERNS as arrays over (MODEL_CLASSES, FINGER_NAMES); "other" requires nothing.
_REQUIRED = np.array([[w is not None for w in PATTERNS[c]] if c in PATTERNS else [False] * 5 for c in MODEL_CLASSES])
_WANT = np.array([[bool(w) for w in PATTERNS[c]] if c in PATTERNS else [False] * 5 for c in MODEL_CLASSES])


def pattern_agreement(scores: np.ndarray) -> np.ndarray:
    """How well (N, 5) extension scores fit each pattern, (N, 6) in MODEL_CLASSES order.

    The agreement with a pattern is its least convinced required finger
    (score if it must be extended, 1 - score if curled); ``other`` has no
    pattern and agrees fully.
    """
    s = np.atleast_2d(scores)[:, None, :]
    fit = np.where(_WANT, s, 1.0 - s)
    return np.min(np.where(_REQUIRED, fit, 1.0), axis=-1)


def decide(probabilities: np.ndarray, scores: np.ndarray, thumb_up_deg: float) -> str:
    """One hand's label of ``GESTURES`` from the network's probabilities, extension scores and thumb angle.

    The network's probabilities are multiplied by the pattern agreement (a
    product of two experts: the network knows how real hands look, the
    pattern knows which fingers a gesture needs, for any person), then the
    winner must reach ``MIN_CONFIDENCE``, must not plainly contradict its
    pattern (every required finger within ``PATTERN_VETO`` of its state), and
    a thumb must point up.
    """
    agreement = pattern_agreement(scores)[0]
    combined = probabilities * agreement
    total = float(combined.sum())
    best = int(np.argmax(combined))
    name = MODEL_CLASSES[best]
    if name == "other" or total <= 0.0 or combined[best] / total < MIN_CONFIDENCE or agreement[best] < PATTERN_VETO:
        return "unknown"
    if name == "thumb":
        return "thumbs_up" if thumb_up_deg <= THUMB_UP_CONE_DEG else "unknown"
    return name


def classify(landmarks: object, model: Optional[GestureModel] = None) -> str:
    """Classify one hand's gesture from its 21 landmarks.

    ``landmarks``: 21 points in MediaPipe's order, each ``(x, y)`` or
    ``(x, y, z)``, in any consistent image coordinates with y pointing down
    (normalised, pixels, or relative to the wrist). A flat sequence of 42 or
    63 numbers is accepted too. Returns one of ``GESTURES``. Raises
    ``ValueError`` for input of the wrong shape, non-finite values or a
    degenerate (zero-size) hand. ``model`` defaults to the shipped one.
    """
    pts = _as_points(landmarks)
    features = hand_features(pts[None])
    p = (model or _default_model()).probabilities(features)[0]
    return decide(p, features[0, -5:], thumb_up_angle_deg(pts))


def classify_by_pattern(landmarks: object) -> str:
    """The earlier rule-only classifier (finger patterns, no model, no thumb direction).

    Kept as the baseline that ``opensteady bench gestures`` compares against.
    """
    s = extension_scores(_as_points(landmarks)[None])[0]
    best, best_score = "unknown", 0.6
    for name, pattern in PATTERNS.items():
        want = (False, False, False, False, False) if name == "fist" else pattern  # the thumb tucked in
        agreement = min(float(v if w else 1.0 - v) for w, v in zip(want, s) if w is not None)
        if agreement > best_score:
            best, best_score = ("thumbs_up" if name == "thumb" else name), agreement
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
