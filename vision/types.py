"""Typed, immutable results of the perception stage.

Every coordinate is normalised to the frame: ``x`` in [0, 1] left to right,
``y`` in [0, 1] top to bottom (image convention, y down). Boxes may stick out
of [0, 1] a little when a subject is cut by the frame edge.

    >>> a = Box(0.4, 0.2, 0.2, 0.2)
    >>> (round(a.cx, 2), round(a.cy, 2), round(a.area, 2))
    (0.5, 0.3, 0.04)
    >>> round(a.iou(Box(0.5, 0.2, 0.2, 0.2)), 3)  # half overlap: 0.02 / 0.06
    0.333
    >>> Detections.empty(0.0, (640, 480)).faces
    ()
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

Point2 = Tuple[float, float]
Point3 = Tuple[float, float, float]

# MediaPipe Pose landmark indices used to estimate a head from a body.
POSE_NOSE = 0
POSE_HEAD = tuple(range(0, 11))  # nose, eyes, ears, mouth
POSE_LEFT_SHOULDER = 11
POSE_RIGHT_SHOULDER = 12


@dataclass(frozen=True)
class Box:
    """Axis-aligned box, top-left corner ``(x, y)`` and size ``(w, h)``, normalised."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        for name in ("x", "y", "w", "h"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"Box.{name} must be finite, got {value!r}")
        if self.w < 0 or self.h < 0:
            raise ValueError(f"Box size must be non-negative, got w={self.w!r}, h={self.h!r}")

    @property
    def cx(self) -> float:
        return self.x + 0.5 * self.w

    @property
    def cy(self) -> float:
        return self.y + 0.5 * self.h

    @property
    def area(self) -> float:
        return self.w * self.h

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other``; 0.0 when either box is empty."""
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0.0 else 0.0

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x <= self.x + self.w and self.y <= y <= self.y + self.h

    @classmethod
    def from_center(cls, cx: float, cy: float, w: float, h: float) -> Box:
        return cls(cx - 0.5 * w, cy - 0.5 * h, w, h)


@dataclass(frozen=True)
class Face:
    """One detected face.

    ``keypoints`` are MediaPipe's six face points in this order when the backend
    provides them: right eye, left eye, nose tip, mouth centre, right ear
    tragion, left ear tragion (the subject's right/left). The Haar backend
    gives none (empty tuple). ``signature`` is an appearance signature for
    telling people apart (``vision.appearance``); empty when not computed.
    """

    box: Box
    keypoints: Tuple[Point2, ...] = ()
    score: float = 1.0
    signature: Tuple[float, ...] = ()


@dataclass(frozen=True)
class Hand:
    """One detected hand: 21 MediaPipe landmarks ``(x, y, z)``.

    ``x``, ``y`` are normalised to the frame; ``z`` is MediaPipe's relative depth
    (wrist = 0, smaller is nearer the camera, roughly in units of frame width).
    ``handedness`` is the subject's own hand, ``'left'`` or ``'right'``, for an
    unmirrored camera (see ``VisionConfig.mirrored``). ``gesture`` is one of
    ``vision.gestures.GESTURES``.
    """

    landmarks: Tuple[Point3, ...]
    handedness: str
    gesture: str
    score: float = 1.0

    @property
    def box(self) -> Box:
        xs = [p[0] for p in self.landmarks]
        ys = [p[1] for p in self.landmarks]
        return Box(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))

    @property
    def wrist(self) -> Point2:
        return (self.landmarks[0][0], self.landmarks[0][1])


@dataclass(frozen=True)
class Body:
    """One detected body (MediaPipe Pose).

    From MediaPipe Pose, ``keypoints`` are the 33 pose landmarks ``(x, y)``,
    normalised, in MediaPipe's order; ``visibility`` gives each one's
    visibility in [0, 1]; ``box`` encloses the visible landmarks. From a
    person detector (``vision.people``), ``keypoints`` is empty and ``box``
    is the detector's window around the whole figure. ``signature`` is the
    clothing's appearance (``vision.appearance.body_signature``), empty when
    not computed.
    """

    box: Box
    keypoints: Tuple[Point2, ...] = ()
    score: float = 1.0
    visibility: Tuple[float, ...] = ()
    signature: Tuple[float, ...] = ()

    def head(self, min_visibility: float = 0.5) -> Optional[Point2]:
        """Estimated centre of the head, or None when the pose cannot tell.

        Uses the visible face landmarks (nose, eyes, ears, mouth) when there
        are any; when the face is turned away, it extrapolates from the
        shoulders: the head sits about 0.6 shoulder widths above their midpoint.
        """
        if len(self.keypoints) <= POSE_RIGHT_SHOULDER:
            return None
        vis = self.visibility or (1.0,) * len(self.keypoints)
        head = [self.keypoints[i] for i in POSE_HEAD if vis[i] >= min_visibility]
        if len(head) >= 2:
            return (sum(p[0] for p in head) / len(head), sum(p[1] for p in head) / len(head))
        mid = self.shoulders(min_visibility)
        if mid is None:
            return None
        return (mid[0], mid[1] - 0.6 * self.shoulder_width())

    def shoulders(self, min_visibility: float = 0.5) -> Optional[Point2]:
        """Midpoint of the shoulders, or None when either is not visible."""
        if len(self.keypoints) <= POSE_RIGHT_SHOULDER:
            return None
        vis = self.visibility or (1.0,) * len(self.keypoints)
        if min(vis[POSE_LEFT_SHOULDER], vis[POSE_RIGHT_SHOULDER]) < min_visibility:
            return None
        ls, rs = self.keypoints[POSE_LEFT_SHOULDER], self.keypoints[POSE_RIGHT_SHOULDER]
        return (0.5 * (ls[0] + rs[0]), 0.5 * (ls[1] + rs[1]))

    def shoulder_width(self) -> float:
        """Distance between the shoulders (normalised), 0.0 when unknown."""
        if len(self.keypoints) <= POSE_RIGHT_SHOULDER:
            return 0.0
        ls, rs = self.keypoints[POSE_LEFT_SHOULDER], self.keypoints[POSE_RIGHT_SHOULDER]
        return math.hypot(ls[0] - rs[0], ls[1] - rs[1])


@dataclass(frozen=True)
class Detections:
    """Everything seen in one frame. Tuples are empty, never None, when nothing was found."""

    t_s: float
    frame_size: Tuple[int, int]  # (width, height) in pixels
    faces: Tuple[Face, ...] = ()
    hands: Tuple[Hand, ...] = ()
    bodies: Tuple[Body, ...] = ()

    @classmethod
    def empty(cls, t_s: float, frame_size: Tuple[int, int]) -> Detections:
        return cls(t_s=t_s, frame_size=frame_size)
