"""Choose whom to follow, stay locked to that person, and predict where they will be.

    from opensteady.vision.tracker import TargetTracker, TrackerConfig

    tracker = TargetTracker(TrackerConfig(select="largest", latency_s=0.08))
    for frame, t_s in frames:
        state = tracker.update(perception.process(frame, t_s), t_s)
        if state.locked:
            aim_at(state.x, state.y)       # normalised, already predicted latency_s ahead
    tracker.lock_on(point=(0.2, 0.5))      # switch to the person nearest a point
    tracker.release()

How identity is kept: every face gets a track with a constant-velocity Kalman
filter (per axis, on the timestamps passed in). Each frame, faces are matched
to tracks (visible tracks first, then lost ones) by a greedy assignment whose
cost combines IoU with the track's predicted box, distance from the predicted
centre in face widths, face-size consistency and appearance
(``vision.appearance``); a face outside a track's gate, or that looks like
someone else, can never feed that track. So a second face that comes closer or
grows larger keeps its own track, and the locked target does not jump to it.

Bodies are targets of their own. A body (a person detector's window or a
pose) that holds a face seen this frame teaches that face's track where the
face sits in it and what the clothes look like; any other body continues the
track whose head it explains (the face turned away: ``source='body'``),
re-takes the lost target near where it was with matching clothes, or starts
a body-only track that can be selected and locked like a face. A face that
later appears in a body-only track's head continues that track (the same
identity either way).

With neither face nor body, the filter coasts (``source='predicted'``) for
``coast_s``, then holds. A face that appears near the predicted position with
a consistent size, and that belongs to no other track, is re-acquired as the
same target within ``coast_s``. Past that, and anywhere in the frame (after a
cut, or someone leaving and coming back), the target is recognised by its
face descriptor (``vision.reid``, dlib's ResNet): one is computed when the
target is acquired, and one for each new face while the target is lost, on a
worker thread; a close match takes the target's identity, a far one is marked
as someone else for good. Nobody else is taken before ``lost_timeout_s``;
after that the lock is released. Pass ``frame_rgb`` to ``update`` for this.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from opensteady.vision import reid
from opensteady.vision.appearance import similarity
from opensteady.vision.gestures import GESTURES, GestureDebouncer
from opensteady.vision.types import Body, Box, Detections, Face, Hand

_SELECT = ("largest", "nearest", "gesture", "manual")
_REID = ("async", "inline", "off")
# Where a face sits in a pedestrian detector's window when nothing is learnt
# yet: the window has a margin of about 1/8 above the head; centre offset in
# window widths and heights, face width in window widths.
_DEFAULT_FACE_IN_BODY = (0.0, 0.18, 0.125)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerConfig:
    """Target selection and tracking settings, validated on construction.

    ``select``: how to pick a target when none is locked: the largest face,
    the face nearest ``calibration_point``, the person showing
    ``lock_gesture`` for ``gesture_hold_ms``, or ``'manual'`` (only
    ``lock_on``). ``latency_s``: how far ahead of ``t_s`` the output position
    is predicted (the pipeline + link + motor latency to compensate).
    """

    select: str = "largest"
    calibration_point: Tuple[float, float] = (0.5, 0.5)
    lock_gesture: str = "open_palm"
    gesture_hold_ms: float = 300.0
    latency_s: float = 0.0
    gate_face_widths: float = 1.5  # association gate around the prediction, in face widths
    gate_speed: float = 1.0  # gate growth while unseen, frame widths per second
    max_gate: float = 0.3  # the gate never grows beyond this, frame widths
    max_size_ratio: float = 1.6  # faces of one person change size less than this between sightings
    coast_s: float = 0.5
    lost_timeout_s: float = 3.0
    track_max_age_s: float = 1.0  # forget non-target tracks unseen this long
    active_gap_s: float = 0.25  # a track unseen longer than this is matched after the visible ones
    min_hits: int = 2  # automatic selection waits for a face seen in this many frames
    # Appearance (vision.appearance.similarity) a face needs to continue a
    # track, and to re-acquire a lost one; 0 disables the check. The same
    # face under other exposure, scale, rotation or noise scores 0.86-1.0,
    # another person about 0.5, the back of a head about 0.45.
    min_track_similarity: float = 0.6
    min_reacquire_similarity: float = 0.75
    accel_noise: float = 3.0  # Kalman process noise, frame widths per second squared
    face_noise: float = 0.05  # face centre measurement noise, in face widths
    body_noise: float = 0.25  # pose head estimate noise, in face widths
    # Clothing (vision.appearance.body_signature) a body needs to continue a
    # track, and to re-take the lost target near where it was; 0 disables.
    min_body_similarity: float = 0.6
    min_reacquire_body_similarity: float = 0.8
    # A body-only track counts as seen this long after its last detection (the
    # person detector runs every few frames).
    body_fresh_s: float = 0.4
    # A pose alone (MediaPipe's single-person model, which can see a figure in a textured
    # background) continues a track for at most this long after a face or a person
    # detector's window last confirmed it; after that the track is left to coast and be
    # lost. 0 (default): a pose alone is enough, as when no person detector runs. The
    # host pipeline turns it on when pose and a person detector run together.
    body_confirm_s: float = 0.0
    # Face descriptors (vision.reid): computed on a worker thread ('async'),
    # in update() ('inline': deterministic, for tests and the simulator), or
    # not at all ('off'; also when dlib is not installed: see reid_status).
    reid: str = "async"
    reid_refresh_s: float = 1.0  # a new descriptor of the visible target at most this often
    # While the target is lost, describe up to this many new faces per frame on the frame
    # path (about 90 ms each, the most target-like first) instead of on the worker, so a
    # returning target is recognised on the frame it comes back in rather than once the
    # worker gets round to it (3+ frames); the others go to the worker. 0: all on the worker.
    reid_sync_candidates: int = 1
    max_descriptors: int = 4  # descriptors kept per person (several views)

    def __post_init__(self) -> None:
        def bad(key: str, reason: str) -> ValueError:
            return ValueError(f"TrackerConfig.{key}={getattr(self, key)!r}: {reason}")

        if self.select not in _SELECT:
            raise bad("select", f"must be one of {_SELECT}")
        if self.lock_gesture not in GESTURES or self.lock_gesture == "unknown":
            raise bad("lock_gesture", f"must be one of {GESTURES[:-1]}")
        cp = self.calibration_point
        if len(cp) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in cp):
            raise bad("calibration_point", "must be a finite (x, y) pair, normalised")
        for key in ("latency_s", "gesture_hold_ms"):
            if not getattr(self, key) >= 0.0:
                raise bad(key, "must be >= 0")
        for key in ("gate_face_widths", "gate_speed", "max_gate", "coast_s", "active_gap_s", "lost_timeout_s", "track_max_age_s",
                    "accel_noise", "face_noise", "body_noise"):
            if not getattr(self, key) > 0.0:
                raise bad(key, "must be > 0")
        if self.reid not in _REID:
            raise bad("reid", f"must be one of {_REID}")
        if not (isinstance(self.max_descriptors, int) and self.max_descriptors >= 1):
            raise bad("max_descriptors", "must be an integer >= 1")
        if not (isinstance(self.reid_sync_candidates, int) and self.reid_sync_candidates >= 0):
            raise bad("reid_sync_candidates", "must be an integer >= 0")
        for key in ("reid_refresh_s", "body_fresh_s", "body_confirm_s"):
            if not getattr(self, key) >= 0.0:
                raise bad(key, "must be >= 0")
        for key in ("min_track_similarity", "min_reacquire_similarity", "min_body_similarity",
                    "min_reacquire_body_similarity"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise bad(key, "must be in [0, 1]")
        if not (isinstance(self.min_hits, int) and self.min_hits >= 1):
            raise bad("min_hits", "must be an integer >= 1")
        if not self.max_size_ratio > 1.0:
            raise bad("max_size_ratio", "must be > 1")
        if self.lost_timeout_s < self.coast_s:
            raise bad("lost_timeout_s", f"must be >= coast_s ({self.coast_s})")


def distinct_faces(faces: Tuple[Face, ...]) -> Tuple[Face, ...]:
    """The faces without the detector's duplicates, best score first kept.

    A face detector sometimes reports one face twice, boxes half a face apart
    (IoU ~0.3, too little for its own suppression). Two boxes each holding the
    other's centre are one face: two real faces that close would hide each
    other. A duplicate left in would start a twin track that takes the target's
    face on later frames.
    """
    kept: List[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if not any(_holds_centre(k.box, face.box) and _holds_centre(face.box, k.box) for k in kept):
            kept.append(face)
    return tuple(kept) if len(kept) < len(faces) else faces


def _holds_centre(outer: Box, inner: Box) -> bool:
    return outer.x <= inner.cx <= outer.x + outer.w and outer.y <= inner.cy <= outer.y + outer.h


@dataclass(frozen=True)
class TargetState:
    """Where the followed subject is (predicted ``latency_s`` ahead), normalised.

    ``source``: 'face' (seen this frame), 'body' (the head estimated from a
    body seen within ``body_fresh_s``), 'predicted' (coasting or holding
    while lost), 'none' (no target).
    """

    locked: bool
    track_id: int
    x: float
    y: float
    vx: float
    vy: float
    source: str
    box: Optional[Box]
    lost_s: float
    t_s: float = 0.0

    @classmethod
    def none(cls, t_s: float = 0.0) -> TargetState:
        return cls(False, -1, 0.5, 0.5, 0.0, 0.0, "none", None, 0.0, t_s)


@dataclass(frozen=True)
class TrackView:
    """A tracked face, as seen from outside (for HUDs and ``lock_on(track_id=...)``)."""

    track_id: int
    box: Box
    lost_s: float


class _Axis:
    """Constant-velocity Kalman filter on one axis: state (position, velocity)."""

    def __init__(self, p: float) -> None:
        self.p, self.v = p, 0.0
        self.pp, self.pv, self.vv = 1e-4, 0.0, 1.0  # covariance: start unsure of velocity

    def predict(self, dt: float, q: float) -> None:
        if dt <= 0.0:
            return
        self.p += self.v * dt
        pp = self.pp + 2 * dt * self.pv + dt * dt * self.vv + q * dt**4 / 4
        pv = self.pv + dt * self.vv + q * dt**3 / 2
        self.pp, self.pv, self.vv = pp, pv, self.vv + q * dt * dt

    def correct(self, z: float, r: float) -> None:
        s = self.pp + r
        kp, kv = self.pp / s, self.pv / s
        innovation = z - self.p
        self.p += kp * innovation
        self.v += kv * innovation
        self.pp, self.pv, self.vv = (1 - kp) * self.pp, (1 - kp) * self.pv, self.vv - kv * self.pv


@dataclass
class _Track:
    track_id: int
    box: Box
    t_s: float  # filter time
    seen_s: float  # last real detection
    x: _Axis = field(init=False)
    y: _Axis = field(init=False)
    width: float = field(init=False)
    # Face centre minus each pose anchor ("shoulders", "head"), in face widths,
    # learnt while face and pose are seen together.
    body_offsets: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    source: str = "face"
    hits: int = 1  # frames with a face or a body
    signature: Tuple[float, ...] = ()  # running average of the face's appearance signature
    # Where the face sits in a person detector's window: centre offset from
    # the window's top centre in window widths and heights, width in window widths.
    face_in_body: Optional[Tuple[float, float, float]] = None
    body_signature: Tuple[float, ...] = ()  # running average of the clothing signature
    descriptors: List[Any] = field(default_factory=list)  # face descriptors (vision.reid)
    described_s: float = -math.inf  # when a descriptor was last asked for
    not_target: bool = False  # its face descriptor says it is not the (lost) target
    born_s: float = field(init=False)
    face_seen_s: Optional[float] = field(init=False)  # last sighting of the face itself; None: body only so far
    confirmed_s: float = field(init=False)  # last sighting by a face or a person detector's window (not a pose)

    def __post_init__(self) -> None:
        self.x, self.y, self.width = _Axis(self.box.cx), _Axis(self.box.cy), self.box.w
        self.born_s = self.t_s
        self.face_seen_s = self.t_s if self.source == "face" else None
        self.confirmed_s = self.t_s

    def predict_to(self, t_s: float, q: float) -> None:
        self.x.predict(t_s - self.t_s, q)
        self.y.predict(t_s - self.t_s, q)
        self.t_s = max(self.t_s, t_s)

    def shift(self, dx: float, dy: float) -> None:
        self.x.p += dx
        self.y.p += dy
        self.box = Box(self.box.x + dx, self.box.y + dy, self.box.w, self.box.h)

    def predicted_box(self) -> Box:
        return Box.from_center(self.x.p, self.y.p, self.box.w, self.box.h)

    def correct(self, cx: float, cy: float, noise: float) -> None:
        r = (noise * self.width) ** 2
        self.x.correct(cx, r)
        self.y.correct(cy, r)


class TargetTracker:
    """Multi-face tracking with one locked target; see the module docstring."""

    def __init__(self, config: Optional[TrackerConfig] = None, describer: Any = None) -> None:
        """``describer``: anything with ``describe(frame_rgb, box) -> vector`` (default: ``reid.FaceDescriber``)."""
        self.config = config if config is not None else TrackerConfig()
        self._tracks: Dict[int, _Track] = {}
        self._next_id = 1
        self._target: Optional[int] = None
        self._t_s: Optional[float] = None
        self._gestures = GestureDebouncer(hold_ms=self.config.gesture_hold_ms)
        self._worker: Optional[reid.DescriptorWorker] = None
        self._describer = describer
        self.reid_status = "not started (no frame passed to update yet)"
        if self.config.reid == "off":
            self.reid_status = "off (TrackerConfig.reid)"
        elif describer is None:
            available, reason = reid.reid_status()  # imports dlib now, not on the first frame
            if not available:
                self.reid_status = f"unavailable: {reason}; re-identification uses position and colour only"
                _log.warning("face re-identification %s", self.reid_status)

    def _reid_worker(self) -> Optional[reid.DescriptorWorker]:
        """The descriptor worker, started on first use; None (with reid_status saying why) when unavailable."""
        if self._worker is None and self.config.reid != "off" and not self.reid_status.startswith("unavailable"):
            # The models load on first use, in the worker thread when asynchronous.
            self._worker = reid.DescriptorWorker(self._describer, asynchronous=self.config.reid == "async")
            self.reid_status = f"on ({self.config.reid})"
        return self._worker

    def wait_descriptors(self, timeout_s: float = 30.0) -> bool:
        """Block until every descriptor asked for is computed (tests and benchmarks); True if done in time."""
        return self._worker is None or self._worker.wait_idle(timeout_s)

    def close(self) -> None:
        """Stop the descriptor worker thread, if one runs."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    # -- public ------------------------------------------------------------
    @property
    def tracks(self) -> Tuple[TrackView, ...]:
        now = self._t_s if self._t_s is not None else 0.0
        return tuple(TrackView(t.track_id, t.box, max(0.0, now - t.seen_s)) for t in self._tracks.values())

    def update(
        self,
        detections: Detections,
        t_s: float,
        camera_shift: Tuple[float, float] = (0.0, 0.0),
        frame_rgb: Optional[np.ndarray] = None,
    ) -> TargetState:
        """Feed one frame's detections; returns the target predicted ``latency_s`` past ``t_s``.

        ``camera_shift``: how far, in normalised image units, camera motion
        alone moved a still subject since the previous frame (from gimbal
        telemetry: angle change over field of view, with the sign of the image
        motion). Tracks are shifted by it before matching, so a fast pan
        neither breaks the gate nor shows up as subject velocity.
        ``frame_rgb``: the frame the detections came from; with it, faces are
        described for re-identification (``vision.reid``), without it only
        position and colour keep identities.
        """
        if not isinstance(detections, Detections):
            raise TypeError(f"detections must be vision.types.Detections, got {type(detections).__name__}")
        if not (isinstance(t_s, (int, float)) and math.isfinite(t_s)):
            raise ValueError(f"t_s must be a finite number of seconds, got {t_s!r}")
        if self._t_s is not None and detections.t_s < self._t_s - 1e-9:
            raise ValueError(f"detections.t_s={detections.t_s} is earlier than the previous frame ({self._t_s})")
        if len(camera_shift) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in camera_shift):
            raise ValueError(f"camera_shift must be a finite (dx, dy) pair, got {camera_shift!r}")
        now = detections.t_s
        self._t_s = now
        for track in self._tracks.values():
            track.shift(*camera_shift)
            if now - track.seen_s > self.config.coast_s:
                track.x.v = track.y.v = 0.0  # coasting is over: hold the last position
            track.predict_to(now, self.config.accel_noise)
        seen = self._associate(detections.faces, now)
        w, h = detections.frame_size
        self._associate_bodies(detections.bodies, seen, now, w / max(h, 1))
        if frame_rgb is not None or self._worker is not None:
            self._reidentify(frame_rgb, now)
        self._forget(now)
        if self._target is None:
            self._auto_select(detections)
        return self._state(t_s)

    def lock_on(
        self,
        point: Optional[Tuple[float, float]] = None,
        track_id: Optional[int] = None,
        hand: Optional[Hand] = None,
    ) -> bool:
        """Lock onto the face nearest ``point``, the track ``track_id``, or the person owning ``hand``.

        Give exactly one. Uses the faces seen in the last update. Returns
        True when a target was found (and locked), False otherwise.
        """
        if sum(a is not None for a in (point, track_id, hand)) != 1:
            raise ValueError("lock_on needs exactly one of point, track_id, hand")
        if point is not None and (len(point) != 2 or not all(math.isfinite(v) for v in point)):
            raise ValueError(f"lock_on point must be a finite (x, y) pair, normalised; got {point!r}")
        if hand is not None and not isinstance(hand, Hand):
            raise TypeError(f"lock_on hand must be a vision.types.Hand, got {type(hand).__name__}")
        visible = self._visible()
        if track_id is not None:
            chosen = self._tracks.get(track_id)
        elif point is not None:
            chosen = min(visible, key=lambda t: math.hypot(t.x.p - point[0], t.y.p - point[1]), default=None)
        else:
            assert hand is not None
            chosen = self._owner_of(hand, visible)
        if chosen is None:
            return False
        self._target = chosen.track_id
        return True

    def release(self) -> None:
        """Stop following anyone (automatic selection applies again on the next update)."""
        self._target = None
        self._gestures.reset()

    # -- association -------------------------------------------------------
    def _gate(self, track: _Track, now: float) -> float:
        unseen = max(0.0, now - track.seen_s)
        grown = self.config.gate_face_widths * track.width + self.config.gate_speed * unseen
        return min(grown, max(self.config.max_gate, self.config.gate_face_widths * track.width))

    def _cost(self, track: _Track, face: Face, now: float, reacquire: bool) -> Optional[float]:
        ratio = max(face.box.w, 1e-6) / max(track.width, 1e-6)
        # A body-only track's face width is a guess from the body's size.
        max_ratio = self.config.max_size_ratio * (1.0 if track.face_seen_s is not None else 1.6)
        if not 1.0 / max_ratio <= ratio <= max_ratio:
            return None
        dist = math.hypot(face.box.cx - track.x.p, face.box.cy - track.y.p)
        if dist > self._gate(track, now):
            return None
        look = similarity(track.signature, face.signature)
        needed = self.config.min_reacquire_similarity if reacquire else self.config.min_track_similarity
        if look < needed:
            return None  # someone else appeared where the track's face was
        iou = face.box.iou(track.predicted_box())
        return dist / max(track.width, 1e-6) + (1.0 - iou) + abs(math.log(ratio)) + (1.0 - look)

    def _associate(self, faces: Tuple[Face, ...], now: float) -> Dict[int, Face]:
        """Match faces to tracks: first tracks seen a moment ago, then lost ones (re-acquisition).

        Two stages, so a face that continues a visible track is never taken
        by a lost track whose gate happens to cover it (someone walking past
        where the target was hidden keeps their own identity).
        """
        faces = distinct_faces(faces)
        active_gap = self.config.active_gap_s
        active = {tid: t for tid, t in self._tracks.items() if now - t.seen_s <= active_gap}
        lost = {tid: t for tid, t in self._tracks.items() if tid not in active}
        target = self._tracks.get(self._target) if self._target is not None else None
        if target is not None and target.descriptors and now - target.seen_s > self.config.coast_s:
            # Gone for longer than a glance: only its face descriptor may bring it back.
            lost.pop(target.track_id, None)
        matched: Dict[int, Face] = {}
        used: set = set()
        for group, reacquire in ((active, False), (lost, True)):
            pairs: List[Tuple[float, int, int]] = []
            for tid, track in group.items():
                for i, face in enumerate(faces):
                    cost = None if i in used else self._cost(track, face, now, reacquire)
                    if cost is not None:
                        pairs.append((cost, tid, i))
            pairs.sort()
            for _, tid, i in pairs:  # greedy on sorted costs: optimal enough for a handful of faces
                if tid in matched or i in used:
                    continue
                matched[tid] = faces[i]
                used.add(i)
        for tid, face in matched.items():
            self._observe_face(self._tracks[tid], face, now)
        for i, face in enumerate(faces):
            if i not in used:
                track = self._new_track(face.box, now, "face")
                track.signature = face.signature
                matched[track.track_id] = face
        return matched

    def _new_track(self, box: Box, now: float, source: str) -> _Track:
        track = _Track(self._next_id, box, now, now, source=source)
        self._tracks[track.track_id] = track
        self._next_id += 1
        return track

    def _observe_face(self, track: _Track, face: Face, now: float) -> None:
        if now - track.seen_s > self.config.coast_s:
            # Back after an occlusion: restart from the new sighting, not from a stale velocity.
            track.x, track.y = _Axis(face.box.cx), _Axis(face.box.cy)
        else:
            track.correct(face.box.cx, face.box.cy, self.config.face_noise)
        track.box, track.width, track.seen_s, track.source = face.box, face.box.w, now, "face"
        track.face_seen_s = now
        track.confirmed_s = now
        track.hits += 1
        if face.signature:
            old = track.signature or face.signature
            if len(old) != len(face.signature):
                old = face.signature
            # Slow average: the look of a person, not of one frame.
            track.signature = tuple(0.9 * a + 0.1 * b for a, b in zip(old, face.signature))

    def _associate_bodies(self, bodies: Tuple[Body, ...], seen: Dict[int, Face], now: float, aspect: float) -> None:
        """Bodies: teach the face seen in them, else continue a track, re-take the lost target, or start a track.

        ``seen``: the faces seen this frame, by track. ``aspect``: frame width over height.
        """
        if not bodies:
            return
        target = self._tracks.get(self._target) if self._target is not None else None
        target_lost = target is not None and target.track_id not in seen
        free = list(range(len(bodies)))
        for tid, face in seen.items():
            track = self._tracks[tid]
            if target_lost and target is not None and track.born_s > (target.face_seen_s or target.born_s):
                # A face that only appeared once the target was lost (often the
                # back of the target's own head, which detectors sometimes
                # report) does not claim a body.
                continue
            holder = min((i for i in free if self._holds(bodies[i], face.box)),
                         key=lambda i: abs(bodies[i].box.cx - face.box.cx), default=None)
            if holder is not None:
                free.remove(holder)
                self._learn_body(track, bodies[holder], face.box)
        matched: Dict[int, int] = {}
        candidates = {tid: t for tid, t in self._tracks.items() if tid not in seen}
        gap = max(self.config.active_gap_s, self.config.body_fresh_s)  # the person detector runs every few frames
        active = {tid: t for tid, t in candidates.items() if now - t.seen_s <= gap}
        lost = {tid: t for tid, t in candidates.items() if tid not in active}
        for group, reacquire in ((active, False), (lost, True)):
            pairs: List[Tuple[float, int, int]] = []
            for tid, track in group.items():
                for i in free:
                    cost = self._body_cost(track, bodies[i], now, reacquire)
                    if cost is not None:
                        pairs.append((cost, tid, i))
            for _, tid, i in sorted(pairs):
                if tid in matched or i not in free:
                    continue
                matched[tid] = i
                free.remove(i)
                self._observe_body(self._tracks[tid], bodies[i], now)
        followed = [self._tracks[tid] for tid in (*seen, *matched)]
        for i in free:
            body = bodies[i]
            if body.keypoints and target is not None:
                continue  # a pose is single-person and follows the target; it does not start tracks
            head = self._head_from_body(None, body)
            if head is None or any(t.box.contains(head[0], head[1]) for t in followed):
                continue  # no usable head, or a second detection of someone already followed
            track = self._new_track(Box.from_center(head[0], head[1], head[2], head[2] * aspect), now, "body")
            self._learn_body(track, body, None)

    @staticmethod
    def _holds(body: Body, face: Box) -> bool:
        """Whether ``face`` is this body's own face."""
        if body.keypoints:
            head = body.head()
            return head is not None and math.hypot(head[0] - face.cx, head[1] - face.cy) <= 2.0 * face.w
        b = body.box
        return (abs(face.cx - b.cx) <= 0.3 * b.w and b.y <= face.cy <= b.y + 0.4 * b.h
                and face.w <= 0.5 * b.w)

    def _body_cost(self, track: _Track, body: Body, now: float, reacquire: bool) -> Optional[float]:
        confirm = self.config.body_confirm_s
        if body.keypoints and confirm > 0.0 and now - track.confirmed_s > confirm:
            return None  # a pose alone for too long: maybe a figure in the wallpaper
        head = self._head_from_body(track, body)
        if head is None:
            return None
        cx, cy, width = head
        ratio = max(width, 1e-6) / max(track.width, 1e-6)
        if not 0.4 <= ratio <= 2.5:  # a loose check: the face width from a body is a rough guess
            return None
        dist = math.hypot(cx - track.x.p, cy - track.y.p)
        if dist > self._gate(track, now):
            return None
        look = similarity(track.body_signature, body.signature)
        needed = self.config.min_reacquire_body_similarity if reacquire else self.config.min_body_similarity
        if look < needed:
            return None
        if reacquire and track.track_id == self._target and track.descriptors and not track.body_signature:
            return None  # a known face, unknown clothes: wait for the face
        return dist / max(track.width, 1e-6) + (1.0 - look)

    def _learn_body(self, track: _Track, body: Body, face: Optional[Box]) -> None:
        if body.signature:
            old = track.body_signature if len(track.body_signature) == len(body.signature) else body.signature
            track.body_signature = tuple(0.8 * a + 0.2 * b for a, b in zip(old, body.signature))
        if face is None:
            return
        if body.keypoints:
            self._learn_body_offsets(track, (body,))
            return
        b = body.box
        new = ((face.cx - b.cx) / b.w, (face.cy - b.y) / b.h, face.w / b.w)
        old = track.face_in_body or new
        track.face_in_body = (0.7 * old[0] + 0.3 * new[0], 0.7 * old[1] + 0.3 * new[1], 0.7 * old[2] + 0.3 * new[2])

    def _observe_body(self, track: _Track, body: Body, now: float) -> None:
        head = self._head_from_body(track, body)
        assert head is not None
        cx, cy, width = head
        if now - track.seen_s > self.config.coast_s:
            track.x, track.y = _Axis(cx), _Axis(cy)
        else:
            track.correct(cx, cy, self.config.body_noise)
        if track.face_seen_s is None:
            track.width = width  # never seen its face: the body's guess is all there is
        track.seen_s, track.source = now, "body"
        if not body.keypoints:
            track.confirmed_s = now
        track.hits += 1
        track.box = Box.from_center(track.x.p, track.y.p, track.width, track.box.h)
        self._learn_body(track, body, None)

    @staticmethod
    def _anchors(body: Body) -> Dict[str, Tuple[float, float]]:
        anchors = {}
        shoulders, head = body.shoulders(), body.head()
        if shoulders is not None:
            anchors["shoulders"] = shoulders
        if head is not None:
            anchors["head"] = head
        return anchors

    def _learn_body_offsets(self, target: _Track, bodies: Tuple[Body, ...]) -> None:
        cx, cy, w = target.box.cx, target.box.cy, max(target.width, 1e-6)
        for body in bodies:
            head = body.head()
            if head is None or math.hypot(head[0] - cx, head[1] - cy) > 2.0 * w:
                continue  # someone else's pose
            for kind, (ax, ay) in self._anchors(body).items():
                new = ((cx - ax) / w, (cy - ay) / w)
                old = target.body_offsets.get(kind, new)
                target.body_offsets[kind] = (0.7 * old[0] + 0.3 * new[0], 0.7 * old[1] + 0.3 * new[1])
            return

    def _head_from_body(self, track: Optional[_Track], body: Body) -> Optional[Tuple[float, float, float]]:
        """Where ``track``'s face centre should be, and its width, from a body: learnt offsets first.

        For a pose the shoulders come first, because they stay visible, and
        keep their relation to the face, when the person turns away. For a
        person detector's window, the face's learnt place in it, or where a
        face usually sits in such a window.
        """
        if body.keypoints:
            anchors = self._anchors(body)
            width = track.width if track is not None else max(0.5 * body.shoulder_width(), 0.01)
            for kind in ("shoulders", "head"):
                if track is not None and kind in anchors and kind in track.body_offsets:
                    (ax, ay), (ox, oy) = anchors[kind], track.body_offsets[kind]
                    return (ax + ox * track.width, ay + oy * track.width, width)
            head = body.head()
            return None if head is None else (head[0], head[1], width)
        b = body.box
        dx, dy, fw = (track.face_in_body if track is not None and track.face_in_body else _DEFAULT_FACE_IN_BODY)
        return (b.cx + dx * b.w, b.y + dy * b.h, fw * b.w)

    # -- re-identification -------------------------------------------------
    def _reidentify(self, frame_rgb: Optional[np.ndarray], now: float) -> None:
        """Ask for descriptors of the target and of return candidates; apply those that arrived."""
        worker = self._reid_worker()
        if worker is None:
            return
        target = self._tracks.get(self._target) if self._target is not None else None
        if frame_rgb is not None and target is not None:
            if target.seen_s == now and target.source == "face":
                if len(target.descriptors) < self.config.max_descriptors and \
                        now - target.described_s >= self.config.reid_refresh_s:
                    self._describe(worker, target, frame_rgb, now)
            elif target.descriptors:
                # Lost: every face that was not seen beside the target may be it coming back.
                since = target.face_seen_s if target.face_seen_s is not None else target.born_s
                candidates = [track for track in self._tracks.values()
                              if track is not target and track.seen_s == now and track.source == "face"
                              and not track.descriptors and not track.not_target and track.born_s > since
                              and now - track.described_s >= self.config.reid_refresh_s
                              and not worker.pending(track.track_id)]
                # The most target-like first (colour, then size): those are judged now.
                candidates.sort(key=lambda t: (-similarity(t.signature, target.signature), -t.box.area))
                sync = self.config.reid_sync_candidates if worker.asynchronous else 0
                for k, track in enumerate(candidates):
                    if k < sync:
                        track.described_s = now
                        vector = worker.describe_now(track.track_id, frame_rgb, track.box)
                        if vector is not None:
                            track.descriptors = [vector]
                    else:
                        self._describe(worker, track, frame_rgb, now)
        for tid, vector in worker.results():
            track = self._tracks.get(tid)
            if track is not None:
                track.descriptors = (track.descriptors + [vector])[-self.config.max_descriptors:]
        target = self._tracks.get(self._target) if self._target is not None else None
        if target is None or not target.descriptors or target.seen_s == now and target.source == "face":
            return
        best, best_d = None, math.inf
        for track in self._tracks.values():
            if track is target or not track.descriptors or track.not_target:
                continue
            d = min(reid.distance(a, b) for a in track.descriptors for b in target.descriptors)
            if d > reid.OTHER_PERSON_ABOVE:
                track.not_target = True
            elif d < reid.SAME_PERSON_BELOW and d < best_d:
                best, best_d = track, d
        if best is not None:
            self._merge_into_target(target, best)

    def _describe(self, worker: reid.DescriptorWorker, track: _Track, frame_rgb: np.ndarray, now: float) -> None:
        track.described_s = now
        worker.submit(track.track_id, frame_rgb, track.box)

    def _merge_into_target(self, target: _Track, found: _Track) -> None:
        """``found`` is the target back: the target takes over its state and keeps its own identity."""
        keep = target.descriptors
        del self._tracks[found.track_id]
        found.track_id = target.track_id
        found.descriptors = (keep + found.descriptors)[-self.config.max_descriptors:]
        found.described_s = max(found.described_s, target.described_s)
        found.face_in_body = found.face_in_body or target.face_in_body
        found.body_signature = found.body_signature or target.body_signature
        found.born_s = target.born_s
        self._tracks[target.track_id] = found

    def _forget(self, now: float) -> None:
        for tid in list(self._tracks):
            track = self._tracks[tid]
            limit = self.config.lost_timeout_s if tid == self._target else self.config.track_max_age_s
            if now - track.seen_s > limit:
                del self._tracks[tid]
                if tid == self._target:
                    self._target = None

    # -- selection ---------------------------------------------------------
    def _visible(self) -> List[_Track]:
        """Faces seen this frame, and bodies seen within ``body_fresh_s``."""
        now = self._t_s if self._t_s is not None else 0.0
        return [t for t in self._tracks.values()
                if t.seen_s == now or (t.source == "body" and now - t.seen_s <= self.config.body_fresh_s)]

    def _owner_of(self, hand: Hand, candidates: List[_Track]) -> Optional[_Track]:
        """The face nearest the hand's wrist, within reach (a few face widths)."""
        wx, wy = hand.wrist
        best, best_d = None, math.inf
        for t in candidates:
            d = math.hypot(wx - t.box.cx, wy - t.box.cy) / max(t.width, 1e-6)
            if d < best_d and d < 6.0:
                best, best_d = t, d
        return best

    def _auto_select(self, detections: Detections) -> None:
        visible = [t for t in self._visible() if t.hits >= self.config.min_hits]
        cfg = self.config
        chosen: Optional[_Track] = None
        if cfg.select == "largest":
            chosen = max(visible, key=lambda t: t.box.area, default=None)
        elif cfg.select == "nearest":
            cx, cy = cfg.calibration_point
            chosen = min(visible, key=lambda t: math.hypot(t.x.p - cx, t.y.p - cy), default=None)
        elif cfg.select == "gesture":
            showing = [h for h in detections.hands if h.gesture == cfg.lock_gesture]
            fired = self._gestures.update(cfg.lock_gesture if showing else None, detections.t_s)
            if fired is not None:
                chosen = self._owner_of(showing[0], visible)
        if chosen is not None:
            self._target = chosen.track_id

    # -- output ------------------------------------------------------------
    def _state(self, t_s: float) -> TargetState:
        track = self._tracks.get(self._target) if self._target is not None else None
        if track is None:
            return TargetState.none(t_s)
        lost_s = max(0.0, track.t_s - track.seen_s)
        fresh = lost_s == 0.0 or (track.source == "body" and lost_s <= self.config.body_fresh_s)
        source = track.source if fresh else "predicted"
        vx, vy = track.x.v, track.y.v
        # Coast on the velocity for coast_s after the last sighting, then hold.
        horizon = (t_s - track.t_s) + self.config.latency_s
        if lost_s > 0.0:
            coast_left = max(0.0, self.config.coast_s - lost_s)
            horizon = min(horizon, coast_left)
            if coast_left == 0.0:
                vx = vy = 0.0
        x, y = track.x.p + vx * horizon, track.y.p + vy * horizon
        box = Box.from_center(x, y, track.box.w, track.box.h)
        return TargetState(True, track.track_id, x, y, vx, vy, source, box, lost_s + max(0.0, t_s - track.t_s), t_s)
