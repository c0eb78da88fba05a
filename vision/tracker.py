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

When the target's face is missing, the pose's head estimate (shifted by the
face-to-pose offset learnt while both were seen) keeps the target updated
(``source='body'``). With neither, the filter coasts (``source='predicted'``)
for ``coast_s``, then holds. A face that appears near the predicted position
with a consistent size, and that belongs to no other track, is re-acquired as
the same target within ``lost_timeout_s``; after that the lock is released.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from opensteady.vision.appearance import similarity
from opensteady.vision.gestures import GESTURES, GestureDebouncer
from opensteady.vision.types import Body, Box, Detections, Face, Hand

_SELECT = ("largest", "nearest", "gesture", "manual")


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
        for key in ("min_track_similarity", "min_reacquire_similarity"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise bad(key, "must be in [0, 1]")
        if not (isinstance(self.min_hits, int) and self.min_hits >= 1):
            raise bad("min_hits", "must be an integer >= 1")
        if not self.max_size_ratio > 1.0:
            raise bad("max_size_ratio", "must be > 1")
        if self.lost_timeout_s < self.coast_s:
            raise bad("lost_timeout_s", f"must be >= coast_s ({self.coast_s})")


@dataclass(frozen=True)
class TargetState:
    """Where the followed subject is (predicted ``latency_s`` ahead), normalised.

    ``source``: 'face' (seen this frame), 'body' (pose head estimate this
    frame), 'predicted' (coasting or holding while lost), 'none' (no target).
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
    hits: int = 1  # frames with a face
    signature: Tuple[float, ...] = ()  # running average of the face's appearance signature
    born_s: float = field(init=False)
    face_seen_s: float = field(init=False)  # last sighting of the face itself (not the body)

    def __post_init__(self) -> None:
        self.x, self.y, self.width = _Axis(self.box.cx), _Axis(self.box.cy), self.box.w
        self.born_s = self.face_seen_s = self.t_s

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

    def __init__(self, config: Optional[TrackerConfig] = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._tracks: Dict[int, _Track] = {}
        self._next_id = 1
        self._target: Optional[int] = None
        self._t_s: Optional[float] = None
        self._gestures = GestureDebouncer(hold_ms=self.config.gesture_hold_ms)

    # -- public ------------------------------------------------------------
    @property
    def tracks(self) -> Tuple[TrackView, ...]:
        now = self._t_s if self._t_s is not None else 0.0
        return tuple(TrackView(t.track_id, t.box, max(0.0, now - t.seen_s)) for t in self._tracks.values())

    def update(
        self, detections: Detections, t_s: float, camera_shift: Tuple[float, float] = (0.0, 0.0)
    ) -> TargetState:
        """Feed one frame's detections; returns the target predicted ``latency_s`` past ``t_s``.

        ``camera_shift``: how far, in normalised image units, camera motion
        alone moved a still subject since the previous frame (from gimbal
        telemetry: angle change over field of view, with the sign of the image
        motion). Tracks are shifted by it before matching, so a fast pan
        neither breaks the gate nor shows up as subject velocity.
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
        matched = self._associate(detections.faces, now)
        self._update_target_from_body(detections.bodies, matched, now)
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
        if not 1.0 / self.config.max_size_ratio <= ratio <= self.config.max_size_ratio:
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
        active_gap = self.config.active_gap_s
        active = {tid: t for tid, t in self._tracks.items() if now - t.seen_s <= active_gap}
        lost = {tid: t for tid, t in self._tracks.items() if tid not in active}
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
                track = _Track(self._next_id, face.box, now, now, signature=face.signature)
                self._tracks[track.track_id] = track
                self._next_id += 1
        return matched

    def _observe_face(self, track: _Track, face: Face, now: float) -> None:
        if now - track.seen_s > self.config.coast_s:
            # Back after an occlusion: restart from the new sighting, not from a stale velocity.
            track.x, track.y = _Axis(face.box.cx), _Axis(face.box.cy)
        else:
            track.correct(face.box.cx, face.box.cy, self.config.face_noise)
        track.box, track.width, track.seen_s, track.source = face.box, face.box.w, now, "face"
        track.face_seen_s = now
        track.hits += 1
        if face.signature:
            old = track.signature or face.signature
            if len(old) != len(face.signature):
                old = face.signature
            # Slow average: the look of a person, not of one frame.
            track.signature = tuple(0.9 * a + 0.1 * b for a, b in zip(old, face.signature))

    def _update_target_from_body(self, bodies: Tuple[Body, ...], matched: Dict[int, Face], now: float) -> None:
        target = self._tracks.get(self._target) if self._target is not None else None
        if target is None or not bodies:
            return
        if self._target in matched:
            self._learn_body_offsets(target, bodies)
            return
        # Faces of people seen while the target was still visible. A face that
        # only appeared once the target was lost (often the back of the
        # target's own head, which detectors sometimes report) does not
        # claim the pose.
        others = [self._tracks[t].box for t in matched if self._tracks[t].born_s <= target.face_seen_s]
        best: Optional[Tuple[float, float]] = None
        best_d = self._gate(target, now)
        for body in bodies:
            head = self._head_from_body(target, body)
            if head is None or any(math.hypot(head[0] - b.cx, head[1] - b.cy) < b.w for b in others):
                continue  # no usable landmarks, or this body belongs to another, visible face
            d = math.hypot(head[0] - target.x.p, head[1] - target.y.p)
            if d <= best_d:
                best, best_d = head, d
        if best is not None:
            target.correct(best[0], best[1], self.config.body_noise)
            target.seen_s, target.source = now, "body"
            target.box = Box.from_center(target.x.p, target.y.p, target.box.w, target.box.h)

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

    @staticmethod
    def _head_from_body(target: _Track, body: Body) -> Optional[Tuple[float, float]]:
        """Where the target's face centre should be, from the pose: learnt offsets first.

        The shoulders come first because they stay visible, and keep their
        relation to the face, when the person turns away.
        """
        anchors = TargetTracker._anchors(body)
        for kind in ("shoulders", "head"):
            if kind in anchors and kind in target.body_offsets:
                (ax, ay), (ox, oy) = anchors[kind], target.body_offsets[kind]
                return (ax + ox * target.width, ay + oy * target.width)
        return body.head()

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
        return [t for t in self._tracks.values() if t.seen_s == self._t_s and t.source == "face"]

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
        source = track.source if lost_s == 0.0 else "predicted"
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
